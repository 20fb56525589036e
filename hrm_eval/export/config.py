"""The settings of `--mode export`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hrm_eval.inference.config import ModelFlags
from hrm_eval.utils import limits
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE, LogSettings


class ExportConfig(LogSettings, ModelFlags):
    """`--mode export`: a checkpoint as a model folder (safetensors) or an ONNX step."""

    checkpoint: str
    format: Literal["safetensors", "onnx"] = "safetensors"
    output_dir: str
    quantize: Literal["int8"] | None = None  # onnx only
    data_path: str | None = None  # evaluate on it: model card results, the int8 cost
    split: str = "test"
    task: str | None = None
    limit: int | None = Field(None, ge=1, le=limits.MAX_LIMIT)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=limits.MAX_BATCH_SIZE)
    max_accuracy_drop: float = Field(1.0, ge=0)  # int8: refuse above this exact-accuracy drop (points)
    threads: int | None = Field(None, ge=1, le=limits.MAX_THREADS)
    overwrite: bool = False  # replace an earlier export in output_dir (never files it did not write)
    push_to_hub: str | None = None  # OWNER/REPO: upload the written folder (hrm_eval.export.hub)
    private: bool = False  # a repo --push-to-hub creates is private
    revision: str | None = None  # --push-to-hub: the branch to commit to (created when missing)
