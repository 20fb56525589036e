"""hrm_eval: evaluate, compare, ensemble and deploy HRM / TRM checkpoints on any machine.

    from hrm_eval import HRMModel, HRMConfig, Evaluator
    from hrm_eval.utils import load_checkpoint, load_config
"""

__version__ = "0.1.0"

from hrm_eval.evaluation.evaluator import Evaluator  # noqa: E402
from hrm_eval.models import HRMConfig, HRMModel, TRMModel, build_model  # noqa: E402

__all__ = ["Evaluator", "HRMConfig", "HRMModel", "TRMModel", "build_model", "__version__"]
