"""Mode that writes a checkpoint in deployment formats: export (safetensors folder, ONNX, int8)."""

from __future__ import annotations

from hrm_eval.cli.base import Invocation, Mode, model_config, passed_on
from hrm_eval.export.config import ExportConfig
from hrm_eval.export.hub import push_folder
from hrm_eval.utils.errors import HRMEvalError


def run_export(inv: Invocation) -> int:
    # why: torch is imported only by the modes that run a model, not by every command line
    from hrm_eval.evaluation.run import simple_evaluate
    from hrm_eval.export.run import check_format, export_model
    from hrm_eval.models.checkpoint import resolve_checkpoint_path

    cfg = inv.output_config(ExportConfig)
    check_format(cfg.format, cfg.quantize)
    if cfg.push_to_hub and cfg.format != "safetensors":
        raise HRMEvalError("--push-to-hub uploads a model folder: use it with --format safetensors")
    checkpoint = resolve_checkpoint_path(cfg.checkpoint)
    config = model_config(cfg.model_config_path)
    results = None
    if cfg.data_path is not None:  # the numbers of the model card
        # the config fields that simple_evaluate takes under the same names, but not quantize
        # (export's means "write int8"; the card's evaluation is the PyTorch model's) or overwrite
        same = ["split", "task", "limit", "batch_size", "threads", "arch_overrides"]
        results = simple_evaluate(
            checkpoint, cfg.data_path, progress=False, model_config=config, **cfg.model_dump(include=set(same))
        )
    # every config field export_model takes under the same name; the checkpoint resolved, the
    # output, the data and the model config under the names export_model gives them
    settings = passed_on(cfg, export_model) | {"checkpoint": checkpoint, "output_dir": cfg.output_dir}
    done = export_model(**settings, data=cfg.data_path, model_config=config, results=results)
    for kind, path in done["files"].items():
        print(f"{kind}: {path}")
    metrics = (done["results"] or {}).get("aggregate_metrics")
    if metrics:
        print(f"exact accuracy {metrics['exact_accuracy']:.4f} on {metrics['total_puzzles']} puzzles")
    if cfg.push_to_hub:
        url = push_folder(cfg.output_dir, cfg.push_to_hub, private=cfg.private, revision=cfg.revision)
        print(f"pushed: {url}")
    cost = done["quantization"]
    if cost:
        print(
            f"int8: exact accuracy {cost['exact_accuracy_fp32']:.4f} -> {cost['exact_accuracy_int8']:.4f} "
            f"({-cost['exact_drop_points']:+.2f} points), argmax agreement {cost['argmax_agreement']:.4f}"
        )
    return 0


EXPORT = Mode(
    "export",
    "Write a checkpoint as a model folder (safetensors + config.json), an ONNX ACT step, or int8 ONNX.",
    run_export,
    ExportConfig,
)
