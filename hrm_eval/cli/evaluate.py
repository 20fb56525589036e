"""Modes that read one checkpoint or its predictions: evaluate, inspect, score."""

from __future__ import annotations

import argparse
from pathlib import Path

from hrm_eval import resources
from hrm_eval.cli.base import (
    Invocation,
    Mode,
    add_flags,
    model_config,
    replaced_note,
    run_on_ranks,
)
from hrm_eval.data.tasks.arc.scoring import score_arc_predictions
from hrm_eval.evaluation.config import EvalConfig, InspectConfig, ScoreConfig
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.paths import OutputLock, default_output


# ---- evaluate ------------------------------------------------------------------------------------
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


# ---- inspect -------------------------------------------------------------------------------------
def run_inspect(inv: Invocation) -> int:
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.evaluation.report import format_inspection
    from hrm_eval.models.checkpoint import load_checkpoint

    cfg = inv.config(InspectConfig)
    onnx_file = _onnx_file(Path(cfg.checkpoint))
    if onnx_file is not None:
        # why: torch is imported only by the modes that run a model, not by every command line
        from hrm_eval.export.onnx import format_onnx_inspection

        print(format_onnx_inspection(onnx_file))
        return 0
    loaded = load_checkpoint(
        cfg.checkpoint,
        overrides=cfg.arch_overrides,
        model_config=model_config(cfg.model_config_path),
        dtype=cfg.dtype,
        allow_nonfinite=True,
        require_seq_len=False,
    )
    print(format_inspection(loaded))
    return 0


def _onnx_file(path: Path) -> Path | None:
    """The .onnx file to inspect: the path itself, or an ONNX-only export folder's model.onnx."""
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.export.onnx import ONNX_FILE, ONNX_SUFFIX
    from hrm_eval.models.checkpoint import WEIGHTS_FILE, list_steps

    if path.suffix.lower() == ONNX_SUFFIX:
        return path
    if path.is_dir() and (path / ONNX_FILE).is_file() and not (path / WEIGHTS_FILE).is_file() and not list_steps(path):
        return path / ONNX_FILE
    return None


INSPECT = Mode(
    "inspect",
    "Show a checkpoint: family, sizes, dtypes, NaN/Inf, and where each setting came from.",
    run_inspect,
    InspectConfig,
)


# ---- score ---------------------------------------------------------------------------------------
def run_score(inv: Invocation) -> int:

    cfg = inv.config(ScoreConfig)
    out = Path(cfg.output_dir)
    with OutputLock(out):
        existed = (out / "arc_scores.json").exists()
        scores = score_arc_predictions(cfg.data_path, cfg.predictions, out)
    for rule in ("strict", "fractional"):
        print(f"{rule:10s} " + "  ".join(f"{k} {v:.4f}" for k, v in scores[rule].items()))
    print(f"scores: {out / 'arc_scores.json'}{replaced_note(existed)}\nsubmission: {out / 'submission.json'}")
    return 0


SCORE = Mode(
    "score", "Score ARC predictions (public all_preds files) with the official voting rules.", run_score, ScoreConfig
)
