"""The settings of `--mode export`."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from hrm_eval.inference.config import ModelFlags
from hrm_eval.utils import limits
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE, LogSettings


class ExportConfig(LogSettings, ModelFlags):
    """`--mode export`: a checkpoint as a model folder (safetensors) or an ONNX step."""

    checkpoint: str
    format: Literal["safetensors", "onnx"] = "safetensors"
    output_dir: str
    quantize: Optional[Literal["int8"]] = None  # onnx only
    data_path: Optional[str] = None  # evaluate on it: model card results, the int8 cost
    split: str = "test"
    task: Optional[str] = None
    limit: Optional[int] = Field(None, ge=1, le=limits.MAX_LIMIT)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=limits.MAX_BATCH_SIZE)
    max_accuracy_drop: float = Field(1.0, ge=0)  # int8: refuse above this exact-accuracy drop (points)
    threads: Optional[int] = Field(None, ge=1, le=limits.MAX_THREADS)
    overwrite: bool = False  # replace an earlier export in output_dir (never files it did not write)
    push_to_hub: Optional[str] = None  # OWNER/REPO: upload the written folder (hrm_eval.export.hub)
    private: bool = False  # a repo --push-to-hub creates is private
    revision: Optional[str] = None  # --push-to-hub: the branch to commit to (created when missing)
