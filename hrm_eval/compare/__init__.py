"""Checkpoint comparison: several checkpoints of one run (or any list) measured side by side.

weights   norms by module and the change from the previous checkpoint
verdict   which checkpoint to use, and what the measurements say about convergence
plots     metric and weight change by step (matplotlib)
markdown  CHECKPOINT_EVALUATION_REPORT.md
run       compare_checkpoints: runs the checkpoints and writes the report
"""

from hrm_eval.compare.markdown import format_report
from hrm_eval.compare.run import CSV_FILE, JSON_FILE, REPORT_FILE, compare_checkpoints, comparison_frame
from hrm_eval.compare.verdict import convergence, recommend
from hrm_eval.compare.weights import module_of, weight_change, weight_statistics

__all__ = [
    "CSV_FILE",
    "JSON_FILE",
    "REPORT_FILE",
    "compare_checkpoints",
    "comparison_frame",
    "convergence",
    "format_report",
    "module_of",
    "recommend",
    "weight_change",
    "weight_statistics",
]
