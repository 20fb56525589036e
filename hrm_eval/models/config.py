"""The model configuration: one Pydantic model for both families, one mapping from the
public `all_config.yaml`.

`seq_len`, `vocab_size` and `num_puzzle_identifiers` come from the dataset in the public code
(they are not in `all_config.yaml`); here they are fields like the others and are filled from
the checkpoint's tensors or the dataset's `dataset.json`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from hrm_eval.models.layers import mlp_width
from hrm_eval.utils import limits
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.validation import read_yaml, unknown_field_error, validate_config

HRM_ARCH_NAME = "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1"
TRM_ARCH_NAME = "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Fields that are not part of the architecture in all_config.yaml's `arch` block.
_NON_ARCH_KEYS = {"loss", "name"}


def _not_bool(v: Any) -> Any:
    """YAML's `true` is no number: `H_cycles: true` was silently taken as 1 (issue 27)."""
    if isinstance(v, bool):
        raise ValueError("a number is needed, got a boolean")
    return v


def _finite(v: Any) -> Any:
    """A number, and a finite one: said before the range (NaN is not "greater than 0" either)."""
    v = _not_bool(v)
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("Input should be a finite number")
    return v


# Range checks: a NaN eps or a negative theta would give NaN logits and a silent 0% score; the
# maxima (hrm_eval.utils.limits) keep a hostile file from asking for hours or terabytes.
_Int = Annotated[int, BeforeValidator(_not_bool)]
_Float = Annotated[float, BeforeValidator(_finite)]
Count = Annotated[_Int, Field(ge=1)]
OptionalCount = Annotated[_Int, Field(ge=0)]
Cycles = Annotated[_Int, Field(ge=1, le=limits.MAX_CYCLES)]
Layers = Annotated[_Int, Field(ge=1, le=limits.MAX_LAYERS)]
OptionalLayers = Annotated[_Int, Field(ge=0, le=limits.MAX_LAYERS)]
Positive = Annotated[_Float, Field(gt=0, allow_inf_nan=False)]
Probability = Annotated[_Float, Field(ge=0, le=1, allow_inf_nan=False)]


class ModelConfig(BaseModel):
    """Architecture of an `hrm_act_v1` (HRM) or TRM checkpoint, with the public names.

    One class for both families (`family` tells which); `HRMConfig` is the same class under
    the design's name (the README's notebook example). Field defaults are the public defaults shared by both
    families; `PUBLIC_DEFAULTS` adds the per-family ones that have no class default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = HRM_ARCH_NAME
    # From the dataset.
    seq_len: Annotated[Count, Field(le=limits.MAX_SEQ_LEN)]
    vocab_size: Annotated[Count, Field(le=limits.MAX_VOCAB_SIZE)]
    num_puzzle_identifiers: Annotated[Count, Field(le=limits.MAX_PUZZLE_IDENTIFIERS)] = 1
    # Architecture.
    H_cycles: Cycles
    L_cycles: Cycles
    H_layers: OptionalLayers = 0
    L_layers: Layers
    hidden_size: Annotated[Count, Field(le=limits.MAX_HIDDEN_SIZE)]
    num_heads: Annotated[Count, Field(le=limits.MAX_HEADS)]
    expansion: Annotated[Positive, Field(le=limits.MAX_EXPANSION)]
    pos_encodings: Literal["rope", "learned", "none"] = "rope"
    puzzle_emb_ndim: Annotated[OptionalCount, Field(le=limits.MAX_HIDDEN_SIZE * 16)] = 0
    rms_norm_eps: Positive = 1e-5
    rope_theta: Positive = 10000.0
    halt_max_steps: Annotated[Count, Field(le=limits.MAX_HALT_STEPS)]
    halt_exploration_prob: Probability = 0.1
    forward_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    # TRM only.
    mlp_t: bool = False
    puzzle_emb_len: Annotated[OptionalCount, Field(le=limits.MAX_PUZZLE_EMB_LEN)] = 16
    no_ACT_continue: bool = True
    # Loss head.
    loss_type: Literal["stablemax_cross_entropy", "softmax_cross_entropy"] = "stablemax_cross_entropy"
    # Training buffers only; kept so that a round trip through all_config.yaml is lossless.
    batch_size: Count | None = None

    @field_validator("forward_dtype", mode="before")
    @classmethod
    def _dtype_name(cls, v: Any) -> Any:
        return str(v).removeprefix("torch.") if v is not None else v

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.pos_encodings == "rope" and (self.head_dim < 2 or self.head_dim % 2):
            raise ValueError(
                f"num_heads {self.num_heads} at hidden_size {self.hidden_size} gives head dimension "
                f"{self.head_dim}; rope needs an even head dimension of at least 2"
            )
        if self.family == "hrm" and self.pos_encodings == "none":
            raise ValueError("pos_encodings 'none' exists only in the TRM family")
        if self.family == "hrm" and self.H_layers < 1:
            raise ValueError("an HRM needs H_layers >= 1")
        return self

    # ---- derived values -------------------------------------------------------------------
    @property
    def family(self) -> Literal["hrm", "trm"]:
        return "trm" if "trm" in self.name.lower() or "tinyrecursive" in self.name.lower() else "hrm"

    @property
    def variant(self) -> str:
        if self.family == "hrm":
            return f"hrm_act_v1 ({self.pos_encodings})"
        return f"trm {'mlp_t' if self.mlp_t else 'attention'} ({self.pos_encodings})"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def puzzle_prefix_len(self) -> int:
        """Positions prepended for the puzzle embedding (P)."""
        if self.puzzle_emb_ndim <= 0:
            return 0
        if self.family == "trm" and self.puzzle_emb_len > 0:
            return self.puzzle_emb_len
        return -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def full_seq_len(self) -> int:
        return self.seq_len + self.puzzle_prefix_len

    @property
    def mlp_width(self) -> int:
        return mlp_width(self.hidden_size, self.expansion)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.forward_dtype]

    def run_bytes(self, in_flight: int, puzzles: int) -> int:
        """Memory an evaluation of `puzzles` puzzles, `in_flight` at once, needs beyond the
        weights, estimated from the config alone (before anything is allocated): the carry (z_H,
        z_L in the compute dtype), one layer's activations (fp32: input, attention q/k/v/out, the
        MLP's gate, up and down) and the logits of the rows in flight, and the per-step records
        (q_halt, q_continue fp32, exact) of every puzzle. Attention scores are not counted: the
        fused attention kernels never hold them."""
        L, H = self.full_seq_len, self.hidden_size
        carry = 2 * in_flight * L * H * self.torch_dtype.itemsize
        layer = in_flight * L * (5 * H + 3 * self.mlp_width) * 4
        logits = in_flight * self.seq_len * self.vocab_size * 4
        per_step = puzzles * self.halt_max_steps * 9
        return carry + layer + logits + per_step

    # ---- the public all_config.yaml ---------------------------------------------------------
    @classmethod
    def arch_fields_from_all_config(cls, all_config: dict[str, Any]) -> dict[str, Any]:
        """The ModelConfig fields an `all_config.yaml` (already parsed) states."""
        arch = all_config.get("arch") or {}
        if not isinstance(arch, dict):
            raise HRMEvalError(f"'arch' must be a mapping of architecture fields, got a {type(arch).__name__}")
        fields: dict[str, Any] = {k: v for k, v in arch.items() if k not in _NON_ARCH_KEYS}
        if "name" in arch:
            fields["name"] = arch["name"]
        loss = arch.get("loss") or {}
        if isinstance(loss, dict) and loss.get("loss_type"):
            fields["loss_type"] = loss["loss_type"]
        known = set(cls.model_fields)
        return {k: v for k, v in fields.items() if k in known}

    @classmethod
    def arch_fields(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The fields a bare `arch` block or a whole all_config.yaml (already parsed) states."""
        return cls.arch_fields_from_all_config(data if "arch" in data else {"arch": data})

    @classmethod
    def from_yaml_config(cls, config: Any, **fields: Any) -> ModelConfig:
        """The architecture a config describes (notebooks: `HRMConfig.from_yaml_config(config)`).

        - A config that knows its architecture (an evaluation config,
          `load_config("configs/eval_config.yaml")`): its `architecture(**fields)`, which reads
          its checkpoint (`hrm_eval.evaluation.config.EvalConfig.architecture`).
        - A run's all_config.yaml or a model config YAML (a path, or its mapping): its `arch`
          fields; `fields` give what such a file does not state (seq_len, vocab_size, ...).
        `fields` win over the file in both cases."""
        architecture = getattr(config, "architecture", None)
        if callable(architecture):
            return architecture(**fields)
        arch = cls.arch_fields(config) if isinstance(config, dict) else read_arch_fields(config)
        return validate_config(arch | fields, cls, str(config) if not isinstance(config, dict) else "model config")

    def to_arch_block(self) -> dict[str, Any]:
        """The `arch` block of an all_config.yaml for this model (dataset fields left out,
        as the public training script does)."""
        data = self.model_dump(exclude={"seq_len", "vocab_size", "num_puzzle_identifiers", "loss_type", "batch_size"})
        if self.family == "hrm":
            for k in ("mlp_t", "puzzle_emb_len", "no_ACT_continue"):
                data.pop(k)
        data["loss"] = {"name": "losses@ACTLossHead", "loss_type": self.loss_type}
        return data


def read_arch_fields(path: str | Path) -> dict[str, Any]:
    """The architecture fields a model config YAML states (a bare `arch` block or a whole
    all_config.yaml), unchecked: they are merged with other sources before validation."""
    return ModelConfig.arch_fields(read_yaml(path, "model config"))


def check_arch_names(fields: dict[str, Any], where: str = "--arch") -> None:
    """Every key of `fields` an architecture field: a typo (`num_head=8`) was silently ignored."""
    for name in fields:
        if name not in ModelConfig.model_fields:
            raise HRMEvalError(unknown_field_error(str(name), ModelConfig.model_fields, where))


HRMConfig = ModelConfig  # the design's name (the README's notebook example); same class

# Defaults of the public model classes themselves: the public training scripts never write them
# into all_config.yaml, so every checkpoint "assumes" them, and rightly.
UNWRITTEN_PUBLIC_DEFAULTS = ("rms_norm_eps", "rope_theta")

# The public defaults for what a checkpoint's tensors cannot tell (the public
# config/arch/hrm_v1.yaml and trm.yaml). Values that both families share are the class defaults.
_SHARED_DEFAULTS = {
    k: ModelConfig.model_fields[k].default
    for k in ("halt_exploration_prob", "pos_encodings", "rope_theta", "rms_norm_eps", "loss_type")
}
PUBLIC_DEFAULTS: dict[str, dict[str, Any]] = {
    "hrm": dict(name=HRM_ARCH_NAME, H_cycles=2, L_cycles=2, num_heads=8, halt_max_steps=16, **_SHARED_DEFAULTS),
    "trm": dict(
        name=TRM_ARCH_NAME,
        H_cycles=3,
        L_cycles=6,
        num_heads=8,
        halt_max_steps=16,
        puzzle_emb_len=ModelConfig.model_fields["puzzle_emb_len"].default,
        no_ACT_continue=ModelConfig.model_fields["no_ACT_continue"].default,
        **_SHARED_DEFAULTS,
    ),
}
