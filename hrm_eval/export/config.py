"""The settings of `--mode export`: every field is also a flag (`setting`)."""

from __future__ import annotations

from typing import Literal

from hrm_eval.inference.config import ModelFlags
from hrm_eval.utils import limits
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE, LogSettings, setting

MAX_EXACT_DROP_POINTS = 1.0  # int8: exact accuracy may drop at most this many percentage points


class ExportConfig(LogSettings, ModelFlags):
    """`--mode export`: a checkpoint as a model folder (safetensors) or an ONNX step."""

    checkpoint: str = setting(help="step_<N> file, run directory, model folder or .safetensors file")
    format: Literal["safetensors", "onnx"] = setting(
        "safetensors",
        help="safetensors: model.safetensors + config.json + README.md; onnx: model.onnx (one ACT step)",
    )
    output_dir: str = setting(flag="--output", help="folder to write")
    quantize: Literal["int8"] | None = setting(  # onnx only
        None, help="onnx: also write model.int8.onnx (int8 linear weights)"
    )
    data_path: str | None = setting(  # evaluate on it: model card results, the int8 cost
        None, flag="--data", help="evaluate on this data: results in the model card, the int8 cost measured"
    )
    split: str = setting("test", help="dataset split")
    task: str | None = setting(None, help="puzzle task; detected when absent")
    limit: int | None = setting(None, ge=1, le=limits.MAX_LIMIT, help="evaluate only the first N examples")
    batch_size: int = setting(DEFAULT_BATCH_SIZE, ge=1, le=limits.MAX_BATCH_SIZE)
    max_accuracy_drop: float = setting(  # int8: refuse above this exact-accuracy drop (points)
        MAX_EXACT_DROP_POINTS, ge=0, help="int8: refuse when exact accuracy drops more (percentage points)"
    )
    threads: int | None = setting(None, ge=1, le=limits.MAX_THREADS, help="CPU threads for onnxruntime")
    overwrite: bool = setting(  # replace an earlier export in output_dir (never files it did not write)
        False, help="replace an earlier export in --output (never other files)"
    )
    push_to_hub: str | None = setting(  # OWNER/REPO: upload the written folder (hrm_eval.export.hub)
        None, metavar="OWNER/REPO", help="then upload the folder to this Hugging Face Hub repo"
    )
    private: bool = setting(False, help="--push-to-hub: create the repo private")
    revision: str | None = setting(  # --push-to-hub: the branch to commit to (created when missing)
        None, help="--push-to-hub: the branch to commit to (created when missing)"
    )
