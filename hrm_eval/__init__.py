"""hrm_eval: evaluate, compare, ensemble and deploy HRM / TRM checkpoints."""
__version__ = "0.1.0"
