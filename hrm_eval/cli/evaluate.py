"""`--mode evaluate`: one checkpoint on a dataset (on several ranks under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hrm_eval import resources
from hrm_eval.cli.base import (
    Invocation,
    Mode,
    add_flags,
    replaced_note,
    run_on_ranks,
)
from hrm_eval.evaluation.config import EvalConfig
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.paths import default_output


def evaluate_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--config", help="evaluation config YAML (default: the bundled configs/eval_config.yaml)")
    add_flags(g, EvalConfig)


def run_evaluate(inv: Invocation) -> int:
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.evaluation.distributed import launched_by_torchrun
    from hrm_eval.evaluation.report import format_summary
    from hrm_eval.evaluation.run import onnx_settings, simple_evaluate

    cfg = inv.config(EvalConfig, default_file=resources.config_file("eval_config.yaml"))
    cfg, data_origin = _data_follows_checkpoint(inv, cfg)
    if (launched_by_torchrun() or cfg.resume) and not cfg.output_dir:
        why = "every rank must write to the same place" if launched_by_torchrun() else "the run to resume lives there"
        raise HRMEvalError(f"{'torchrun' if launched_by_torchrun() else '--resume'} needs --output: {why}")
    out = Path(cfg.output_dir) if cfg.output_dir else default_output("evaluate", cfg.checkpoint, cfg.data_path)
    _check_interrupted(out, cfg)
    device_name = cfg.device
    if cfg.backend == "onnxruntime" or cfg.quantize:  # its own device and dtype rules, checked first
        device_name, _ = onnx_settings(cfg.device, cfg.dtype, cfg.compile)

    done = run_on_ranks(cfg, "evaluate", device_name, out, "results.json", simple_evaluate, config=cfg)
    if done is None:  # a rank other than 0
        return 0
    results, existed = done
    print(f"data: {cfg.data_path} (from {data_origin})")
    print(format_summary(results))
    if cfg.backend != "torch" or cfg.quantize:
        print(f"backend onnxruntime, weights {cfg.quantize or 'float32'}")
    cost = results.get("quantization")
    if cost:
        print(
            f"int8 against fp32 on the same puzzles: exact {cost['exact_accuracy_fp32']:.4f} -> "
            f"{cost['exact_accuracy_int8']:.4f} ({-cost['exact_drop_points']:+.2f} points, limit "
            f"{cost['threshold_points']}), argmax agreement {cost['argmax_agreement']:.4f}"
        )
    print(f"results: {out / 'results.json'}{replaced_note(existed and not cfg.resume)}")
    return 0


def _check_interrupted(out: Path, cfg: EvalConfig) -> None:
    """A rerun into the folder of an interrupted run used to start from zero without a word."""
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.evaluation.resume import MANIFEST, RESUME_DIR

    if (out / RESUME_DIR / MANIFEST).exists() and not (cfg.resume or cfg.overwrite):
        raise HRMEvalError(
            f"--output {out}: an interrupted run is here ({RESUME_DIR}/): add --resume to continue it, "
            "or --overwrite to start again"
        )


def _data_follows_checkpoint(inv: Invocation, cfg: EvalConfig) -> tuple[EvalConfig, str]:
    """(the config with the data to evaluate on, where that choice came from). A --checkpoint
    given without --data (and without a --config of one's own) is evaluated on its own run's
    dataset: the bundled config's data belongs to the bundled model, and another model scored on
    it prints numbers that look real (0.190 for a model whose card says 0.450)."""
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.models.checkpoint import checkpoint_dataset

    if "data_path" in inv.flags:
        return cfg, "--data"
    if inv.config_file is not None:
        return cfg, f"--config {inv.config_file}"
    if "checkpoint" not in inv.flags:
        return cfg, "the bundled configs/eval_config.yaml"
    data = checkpoint_dataset(cfg.checkpoint)
    return cfg.model_copy(update={"data_path": str(data)}), "the checkpoint's run"


EVALUATE = Mode(
    "evaluate",
    "Evaluate a checkpoint on a dataset (defaults: the bundled model and its test split).",
    run_evaluate,
    EvalConfig,
    defaults_file="configs/eval_config.yaml",
    flags=evaluate_arguments,
)
