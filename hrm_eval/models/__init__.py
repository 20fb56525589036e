"""Model code: the HRM and TRM families, their shared layers, ACT, losses, and the
checkpoint package (`hrm_eval.models.checkpoint`, the only part here that reads files).

Names: `ModelConfig` (the design's name: `HRMConfig`) configures both families; `HRMReasoning` and
`TRMReasoning` are the inner models (one reasoning step, what a checkpoint's tensors hold);
`ACTModel` wraps either with Adaptive Computation Time: `ACTModel(HRMReasoning(c))` is the
public code's HierarchicalReasoningModel_ACTV1. `build_model(config)` builds the right one.
"""

from hrm_eval.models.act import ACTCarry, ACTModel
from hrm_eval.models.config import HRM_ARCH_NAME, TRM_ARCH_NAME, HRMConfig, ModelConfig
from hrm_eval.models.hrm import HRMModel, HRMReasoning
from hrm_eval.models.trm import TRMReasoning


def build_model(config: ModelConfig) -> ACTModel:
    """An ACT-wrapped model of the config's family, randomly initialised."""
    inner = TRMReasoning(config) if config.family == "trm" else HRMReasoning(config)
    return ACTModel(inner)


__all__ = [
    "ACTCarry",
    "ACTModel",
    "ModelConfig",
    "HRMConfig",
    "HRMReasoning",
    "TRMReasoning",
    "HRMModel",
    "build_model",
    "HRM_ARCH_NAME",
    "TRM_ARCH_NAME",
]
