"""Training config: the public `all_config.yaml` fields, as a Pydantic model.

A training YAML has the same shape as the `all_config.yaml` the public script writes (an
`arch` block plus top-level training fields), so a run's config file is also a valid input.

The fields that `--mode train` also takes as flags (--data, --output, --max-steps, --device) are
declared with `setting`; importing this module imports no torch (the CLI builds its flags from it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hrm_eval.utils.config import setting
from hrm_eval.utils.validation import unknown_field_error

if TYPE_CHECKING:
    from hrm_eval.models.config import HRMConfig


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    arch: dict[str, Any]
    data_path: str = setting(flag="--data", help="dataset directory (overrides data_path)")
    global_batch_size: int = Field(..., ge=1)
    epochs: int = Field(..., ge=1)
    max_steps: int | None = setting(  # stop early (the LR schedule still spans `epochs`)
        None, ge=1, help="stop after N optimiser steps (a quick smoke run: --max-steps 10)"
    )
    eval_interval: int | None = Field(None, ge=1)  # in epochs, as in the public script
    eval_limit: int | None = Field(None, ge=1)  # evaluate on the first N test examples only
    checkpoint_every_eval: bool = True
    # also a checkpoint every N steps between evaluations: a long CPU run (epochs of hours) then
    # loses at most N steps when its session ends; --resume continues mid-epoch
    checkpoint_every: int | None = Field(None, ge=1)
    lr: float
    lr_min_ratio: float = 1.0
    lr_warmup_steps: int = 0
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    puzzle_emb_lr: float = 1e-2
    puzzle_emb_weight_decay: float = 0.1
    project_name: str = "hrm-eval"
    run_name: str = "run"
    checkpoint_path: str | None = setting(  # default: outputs/train/<run_name>
        None, flag="--output", help="run directory for step_<N> files (default: outputs/train/<run_name>)"
    )
    seed: int = 0
    eval_save_outputs: list[str] = Field(default_factory=list)
    ema: bool = False  # TRM option: save the moving average of the weights
    ema_rate: float = 0.999
    device: str = setting("auto", help="auto | cpu | cuda | cuda:N | mps")
    wandb: bool = False  # log to Weights & Biases when installed (WANDB_MODE=offline works)
    log_every: int = Field(10, ge=1)
    # Fields of the public TRM all_config.yaml, accepted so that a TRM run's config loads; this
    # trainer reads one dataset (data_paths: [one] becomes data_path) and has no evaluators.
    data_paths_test: list[str] = Field(default_factory=list)
    evaluators: list[Any] = Field(default_factory=list)
    min_eval_interval: int | None = None
    load_checkpoint: str | None = None
    freeze_weights: bool = False

    @model_validator(mode="before")
    @classmethod
    def _public_data_paths(cls, data: Any) -> Any:
        if isinstance(data, dict) and (data.get("load_checkpoint") or data.get("freeze_weights")):
            raise ValueError(
                "load_checkpoint / freeze_weights are not supported by this trainer (--resume continues "
                "a run directory)"
            )
        if isinstance(data, dict) and "data_paths" in data:
            data = dict(data)
            paths = data.pop("data_paths")
            if data.get("data_path") is None:
                if not isinstance(paths, list) or len(paths) != 1:
                    raise ValueError(f"data_paths {paths!r}: this trainer reads one dataset (give data_path)")
                data["data_path"] = paths[0]
        return data

    @field_validator("arch")
    @classmethod
    def _arch_is_valid(cls, arch: dict[str, Any]) -> dict[str, Any]:
        from hrm_eval.models.config import HRMConfig  # why: models import torch; the CLI reads this model first

        unknown = sorted(set(arch) - set(HRMConfig.model_fields) - {"loss"})
        if unknown:  # a typo in a training config must not silently fall back to a default
            raise ValueError(unknown_field_error(str(unknown[0]), HRMConfig.model_fields, "unknown arch field"))
        # Dataset fields are filled in later; check everything else now, with placeholders.
        fields = HRMConfig.arch_fields_from_all_config({"arch": arch})
        HRMConfig(**{"seq_len": 1, "vocab_size": 2, **fields})
        return arch

    def model_config_for(self, seq_len: int, vocab_size: int, num_puzzle_identifiers: int) -> HRMConfig:
        from hrm_eval.models.config import HRMConfig  # why: models import torch; the CLI reads this model first

        fields = HRMConfig.arch_fields_from_all_config({"arch": self.arch})
        return HRMConfig(
            **fields,
            seq_len=seq_len,
            vocab_size=vocab_size,
            num_puzzle_identifiers=num_puzzle_identifiers,
            batch_size=self.global_batch_size,
        )

    def all_config(self, model: HRMConfig, checkpoint_path: str) -> dict[str, Any]:
        """What the run writes as all_config.yaml (public layout; our extras kept)."""
        data = self.model_dump(exclude={"arch"})
        data["arch"] = model.to_arch_block()
        data["checkpoint_path"] = checkpoint_path
        return data
