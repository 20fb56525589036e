"""The settings of one checkpoint's evaluation: `--mode evaluate` (and configs/eval_config.yaml),
`--mode inspect` and `--mode score`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from hrm_eval import resources
from hrm_eval.inference.config import ModelFlags
from hrm_eval.inference.halting import FIXED, SWEEP, SWEEP_NOT_A_MODE, HaltingMode
from hrm_eval.utils import limits
from hrm_eval.utils.config import Dtype, LogSettings, RunSettings, ScalingSettings

if TYPE_CHECKING:
    from hrm_eval.models.config import ModelConfig


class EvalConfig(RunSettings, ModelFlags, ScalingSettings):
    """`--mode evaluate` (and configs/eval_config.yaml): every field is also a flag."""

    checkpoint: str  # step_<N> file, `checkpoint` file or run directory
    data_path: str  # dataset directory, or a .csv / .jsonl file of puzzles
    dtype: Optional[Literal["auto", "float32", "bfloat16", "float16"]] = None  # type: ignore[assignment]  # auto: bf16 where native
    halting: HaltingMode = FIXED  # fixed: the public numbers
    sweep: bool = False  # one fixed run, then exact accuracy against mean steps for every rule (halting_sweep)
    halt_threshold: float = Field(0.5, gt=0, lt=1)  # threshold: stop when sigmoid(q_halt) >= this
    min_steps: int = Field(1, ge=1, le=limits.MAX_STEPS)  # adaptive / threshold never stop earlier
    max_steps: Optional[int] = Field(None, ge=1, le=limits.MAX_STEPS)  # default: the model's halt_max_steps
    threads: Optional[int] = Field(
        None, ge=1, le=limits.MAX_THREADS
    )  # CPU threads (default: OMP_NUM_THREADS, else one per core)
    compile: bool = False  # torch.compile the ACT step (skipped with a warning if unavailable)
    backend: Literal["torch", "onnxruntime"] = "torch"  # onnxruntime: one exported ACT step, CPU, fp32
    quantize: Optional[Literal["int8"]] = None  # int8 linear weights (implies onnxruntime)
    save_predictions: bool = False
    output_format: Literal["json", "csv"] = "json"  # csv: per_puzzle.csv as well as results.json
    # skip the puzzles an interrupted run with the same settings finished in output_dir; "strict":
    # stop at a logged row that cannot be trusted instead of evaluating it again
    resume: Union[bool, Literal["strict"]] = False
    overwrite: bool = False  # start afresh in an output_dir that holds an interrupted run

    @field_validator("halting", mode="before")
    @classmethod
    def _sweep_is_a_switch(cls, v: Any) -> Any:
        if v == SWEEP:  # an analysis of a fixed run, asked for by its own switch
            raise ValueError(SWEEP_NOT_A_MODE)
        return v

    @model_validator(mode="after")
    def _sweep_runs_fixed(self) -> "EvalConfig":
        if self.sweep and self.halting != FIXED:
            raise ValueError(f"--sweep simulates every halting rule from one fixed run; drop --halting {self.halting}")
        return self

    def architecture(self, **fields: Any) -> "ModelConfig":
        """The architecture of this config's checkpoint on its data, resolved as `evaluate`
        resolves it (all_config.yaml beside the checkpoint, model_config_path, arch_overrides, the
        tensors themselves) and checked against the data; `fields` win. It reads the checkpoint
        file (architecture facts live in its tensors); its dtype is the checkpoint's unless the
        config names one. `HRMConfig.from_yaml_config(config)` (the notebook example) calls this."""
        # why: loading imports torch; the CLI reads this config before torch is imported
        from hrm_eval.data.open import open_dataset
        from hrm_eval.inference.checkpoint import load_checkpoint
        from hrm_eval.models.config import read_arch_fields

        model_config = None
        if self.model_config_path:
            model_config = read_arch_fields(resources.find(self.model_config_path))
        overrides = dict(self.arch_overrides) | fields
        if self.dtype not in (None, "auto"):
            overrides.setdefault("forward_dtype", self.dtype)
        checkpoint = resources.find(self.checkpoint)
        if Path(self.data_path).suffix.lower() in (".jsonl", ".csv"):  # raw puzzles: their length only
            dataset = open_dataset(resources.find(self.data_path), split=self.split, task=self.task)
            overrides.setdefault("seq_len", dataset.metadata.seq_len)
            return load_checkpoint(checkpoint, overrides=overrides, model_config=model_config).config
        dataset = open_dataset(resources.find(self.data_path), split=self.split)
        return load_checkpoint(checkpoint, data=dataset, overrides=overrides, model_config=model_config).config


class InspectConfig(LogSettings, ModelFlags):
    checkpoint: str
    dtype: Optional[Dtype] = None


class ScoreConfig(LogSettings):
    data_path: str
    predictions: str  # prefix of PREFIX_all_preds.<rank> files
    output_dir: str
