"""The settings of one checkpoint's evaluation: `--mode evaluate` (and configs/eval_config.yaml),
`--mode inspect` and `--mode score`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import field_validator, model_validator

from hrm_eval import resources
from hrm_eval.inference.config import ModelFlags
from hrm_eval.inference.halting import FIXED, SWEEP, SWEEP_DESCRIPTION, SWEEP_NOT_A_MODE, HaltingMode, modes_help
from hrm_eval.utils import limits
from hrm_eval.utils.config import DTYPE_HELP, Dtype, LogSettings, RunSettings, ScalingSettings, setting

if TYPE_CHECKING:
    from hrm_eval.models.config import ModelConfig


class EvalConfig(RunSettings, ModelFlags, ScalingSettings):
    """`--mode evaluate` (and configs/eval_config.yaml): every field is also a flag."""

    checkpoint: str = setting(  # step_<N> file, `checkpoint` file or run directory
        help="step_<N> file, published `checkpoint` file, or run directory (newest step)"
    )
    data_path: str = setting(  # dataset directory, or a .csv / .jsonl file of puzzles
        flag="--data", help="dataset directory, or a .jsonl / .csv file of puzzles"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = setting(  # type: ignore[assignment]
        None, help=DTYPE_HELP + "; auto: bf16 where this device runs it natively, else the checkpoint's"
    )
    halting: HaltingMode = setting(FIXED, action="halting", help=modes_help())  # fixed: the public numbers
    sweep: bool = setting(False, help=SWEEP_DESCRIPTION)  # one fixed run, then every rule simulated
    halt_threshold: float = setting(  # threshold: stop when sigmoid(q_halt) >= this
        0.5, gt=0, lt=1, help="threshold halting: stop when sigmoid(q_halt) >= P"
    )
    min_steps: int = setting(  # adaptive / threshold never stop earlier
        1, ge=1, le=limits.MAX_STEPS, help="adaptive / threshold: never stop before this step"
    )
    max_steps: int | None = setting(  # default: the model's halt_max_steps
        None, ge=1, le=limits.MAX_STEPS, help="stop at this step at the latest (default halt_max_steps)"
    )
    threads: int | None = setting(
        None, ge=1, le=limits.MAX_THREADS, help="CPU threads (default: OMP_NUM_THREADS, else one per core)"
    )
    # torch.compile the ACT step (skipped with a warning if unavailable)
    compile: bool = setting(False, help="torch.compile the ACT step")
    backend: Literal["torch", "onnxruntime"] = setting(  # onnxruntime: one exported ACT step, CPU, fp32
        "torch", help="onnxruntime: export one ACT step to ONNX and run the ACT loop there (CPU, float32)"
    )
    quantize: Literal["int8"] | None = setting(  # int8 linear weights (implies onnxruntime)
        None,
        help="int8 linear weights in onnxruntime (implies --backend onnxruntime); the fp32 graph also "
        "runs on the same puzzles to report the cost",
    )
    # what is written, besides results.json and per_puzzle.jsonl
    save_predictions: bool = setting(False, help="also step_<N>_all_preds.<rank> (public layout)")
    output_format: Literal["json", "csv"] = setting(  # csv: per_puzzle.csv as well as results.json
        "json", flag="--format", help="csv: also per_puzzle.csv"
    )
    # skip the puzzles an interrupted run with the same settings finished in output_dir; "strict":
    # stop at a logged row that cannot be trusted instead of evaluating it again
    resume: bool | Literal["strict"] = setting(
        False,
        nargs="?",
        const=True,
        choices=("strict",),  # the bare flag gives const (True), which choices do not check
        metavar="strict",
        exclusive="interrupted run",
        help="continue the interrupted run in --output: skip the puzzles it finished (same settings required; "
        "logged rows that cannot be trusted are evaluated again, or with `--resume strict` stop the run)",
    )
    overwrite: bool = setting(  # start afresh in an output_dir that holds an interrupted run
        False, exclusive="interrupted run", help="start afresh in an --output that holds an interrupted run"
    )

    @field_validator("halting", mode="before")
    @classmethod
    def _sweep_is_a_switch(cls, v: Any) -> Any:
        if v == SWEEP:  # an analysis of a fixed run, asked for by its own switch
            raise ValueError(SWEEP_NOT_A_MODE)
        return v

    @model_validator(mode="after")
    def _sweep_runs_fixed(self) -> EvalConfig:
        if self.sweep and self.halting != FIXED:
            raise ValueError(f"--sweep simulates every halting rule from one fixed run; drop --halting {self.halting}")
        return self

    def architecture(self, **fields: Any) -> ModelConfig:
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
    checkpoint: str = setting(
        help="step_<N> file, published `checkpoint` file, run directory (newest step), model folder, "
        ".safetensors or .onnx file",
    )
    dtype: Dtype | None = setting(None, help=DTYPE_HELP)


class ScoreConfig(LogSettings):
    data_path: str = setting(flag="--data", help="the ARC dataset directory the predictions were made on")
    predictions: str = setting(help="prefix of PREFIX_all_preds.<rank> files")
    output_dir: str = setting(flag="--output", help="where arc_scores.json and submission.json go")
