"""`--mode inspect`: what a checkpoint (or an ONNX export) holds, without evaluating it."""

from __future__ import annotations

from pathlib import Path

from hrm_eval.cli.base import Invocation, Mode, model_config
from hrm_eval.evaluation.config import InspectConfig


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
