"""Pure model code (no I/O): the HRM and TRM families, their shared layers, ACT and losses."""

from hrm_eval.models.act import ACTCarry, ACTModel
from hrm_eval.models.config import HRM_ARCH_NAME, TRM_ARCH_NAME, HRMConfig
from hrm_eval.models.hrm import HRMModel
from hrm_eval.models.trm import TRMModel


def build_model(config: HRMConfig) -> ACTModel:
    """An ACT-wrapped model of the config's family, randomly initialised."""
    inner = TRMModel(config) if config.family == "trm" else HRMModel(config)
    return ACTModel(inner)


__all__ = ["ACTCarry", "ACTModel", "HRMConfig", "HRMModel", "TRMModel", "build_model",
           "HRM_ARCH_NAME", "TRM_ARCH_NAME"]
