"""The whole restore: `load_checkpoint` reads a checkpoint (`read`), settles and checks its
architecture (`architecture`), and builds the model holding the file's tensors.

Accepts what the public training scripts write: a `step_<N>` file (or a published
`checkpoint` file, or a run directory, then its newest `step_<N>`), with any of the key
prefixes `_orig_mod.model.inner.`, `model.inner.` or none; and what `--mode export` writes:
a model folder (`model.safetensors` + `config.json`) or a bare `.safetensors` file (its
architecture in the file's metadata). It never runs code from a checkpoint (`read`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from hrm_eval.models import ACTModel, ModelConfig, build_model
from hrm_eval.models.checkpoint.architecture import (
    alarming_assumptions,
    check_architecture,
    config_source_name,
    full_seq_len_from_tensors,
    read_all_config,
    resolve_config,
    run_dataset,
)
from hrm_eval.models.checkpoint.format import strip_prefix
from hrm_eval.models.checkpoint.read import find_nonfinite, read_state_dict, resolve_checkpoint_path, step_of
from hrm_eval.models.config import check_arch_names
from hrm_eval.models.layers import RotaryEmbedding
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import sha256_file

log = logging.getLogger("hrm_eval")


@dataclass
class LoadedCheckpoint:
    model: ACTModel
    config: ModelConfig
    path: Path
    step: int | None
    sha256: str
    key_prefix: str
    sources: dict[str, str]  # field -> where its value came from
    state_dict_dtypes: dict[str, int]  # dtype name -> number of tensors
    num_state_values: int  # every value in the state dict, buffers included
    num_trainable_parameters: int
    nonfinite: list[tuple[str, int, int]] = field(default_factory=list)  # (key, #NaN, #Inf)

    @property
    def assumed(self) -> list[str]:
        """Fields set to the public default because no file or flag stated them; a summary
        should point at them (and at --mode inspect) when a score looks wrong."""
        return [k for k, v in self.sources.items() if v.startswith("assumed")]


def load_checkpoint(
    path: str | Path,
    *,
    dataset: dict[str, Any] | BaseModel | None = None,
    overrides: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    dtype: str | None = None,
    allow_nonfinite: bool = False,
    require_seq_len: bool = True,
) -> LoadedCheckpoint:
    """Restore an ACT model from a checkpoint file or run directory, validated.

    `dataset` is a dataset.json mapping (or DatasetMetadata) to check against (from a dataset
    path or an open dataset: `hrm_eval.inference.checkpoint.load_checkpoint(path, data=...)`).
    Without it, a model whose tensors do not tell seq_len (rope) takes it from the dataset its
    run's all_config.yaml names in `data_path`, when that exists;
    `overrides` are architecture fields that win over every file; `dtype` overrides forward_dtype.
    With `require_seq_len=False` (inspection) a rope/none model whose seq_len nothing states
    is built with a placeholder seq_len of 1."""
    check_arch_names(overrides or {})  # a typo'd name is refused before the file is read
    path = resolve_checkpoint_path(path)
    raw = read_state_dict(path)
    sd, prefix = strip_prefix(raw)
    all_config = read_all_config(path)
    overrides = dict(overrides or {})
    if dtype is not None:
        overrides["forward_dtype"] = dtype
    config, sources = resolve_config(
        sd,
        all_config=all_config,
        model_config=model_config,
        dataset=_dataset_to_check(sd, all_config, dataset, require_seq_len),
        overrides=overrides,
        origin=str(path),
        require_seq_len=require_seq_len,
        config_name=config_source_name(path),
    )
    check_architecture(sd, config, path)
    nonfinite = _check_finite(sd, path, allow_nonfinite)
    _warn_assumed(path, sources)  # after the checks: a refused file gets its one error line only
    model = _restore_model(sd, config, device)
    return _loaded(model, config, path, raw, prefix, sources, nonfinite)


def _dataset_to_check(
    sd: dict[str, torch.Tensor],
    all_config: dict[str, Any] | None,
    dataset: dict[str, Any] | BaseModel | None,
    require_seq_len: bool,
) -> dict[str, Any] | None:
    """The dataset facts the config is checked against (see `load_checkpoint`): `dataset`, else,
    when seq_len is needed and the tensors do not tell it, those of the dataset the run trained
    on (None when there is none)."""
    if dataset is None and require_seq_len and full_seq_len_from_tensors(sd) is None:
        dataset = run_dataset(all_config)
    if isinstance(dataset, BaseModel):
        return dataset.model_dump()
    return dataset


def _check_finite(sd: dict[str, torch.Tensor], path: Path, allow_nonfinite: bool) -> list[tuple[str, int, int]]:
    """`find_nonfinite`'s list; a tensor with NaN or Inf is an error unless `allow_nonfinite`."""
    nonfinite = find_nonfinite(sd)
    if nonfinite and not allow_nonfinite:
        k, nan, inf = nonfinite[0]
        more = f" (and {len(nonfinite) - 1} more tensors)" if len(nonfinite) > 1 else ""
        raise HRMEvalError(f"checkpoint {path} holds non-finite values: {k} has {nan} NaN and {inf} Inf{more}")
    return nonfinite


def _restore_model(sd: dict[str, torch.Tensor], config: ModelConfig, device: str | torch.device) -> ACTModel:
    """The model of `config` holding the checked tensors `sd`, on `device`, in eval mode.

    Built on the meta device and given the file's tensors themselves (assign), not copies: no
    random init to overwrite, and one copy of the weights in memory, not two (a public ARC
    checkpoint's puzzle-embedding table alone is gigabytes)."""
    with torch.device("meta"):
        model = build_model(config)
    own = model.inner.state_dict()
    # In the dtypes a copy into the model would give: fp32 weights; H_init / L_init, stored in the
    # training dtype, in the dtype the model computes in (config.torch_dtype).
    cast = {k: v.to(own[k].dtype) for k, v in sd.items()}
    model.inner.load_state_dict(cast, strict=True, assign=True)
    for module in model.modules():  # what checkpoints do not store is computed
        if isinstance(module, RotaryEmbedding):
            module.compute_tables()
    model.to(device)
    model.eval()
    return model


def _loaded(
    model: ACTModel,
    config: ModelConfig,
    path: Path,
    raw: dict[str, torch.Tensor],
    prefix: str,
    sources: dict[str, str],
    nonfinite: list[tuple[str, int, int]],
) -> LoadedCheckpoint:
    """The restored model with what reports cite about it: file, step, hash, key prefix, the
    source of every field, and the counts of the state dict as stored (`raw`, prefix and all)."""
    return LoadedCheckpoint(
        model=model,
        config=config,
        path=path,
        step=step_of(path),
        sha256=sha256_file(path),
        key_prefix=prefix,
        sources=sources,
        state_dict_dtypes=_dtype_counts(raw),
        num_state_values=sum(v.numel() for v in raw.values()),
        num_trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        nonfinite=nonfinite,
    )


def _warn_assumed(path: Path, sources: dict[str, str]) -> None:
    """Say loudly when `alarming_assumptions` finds any."""
    assumed = alarming_assumptions(sources)
    if assumed:
        log.warning(
            "%s: no all_config.yaml or model config states %s; assumed the public defaults. If the "
            "results look wrong, compare with --mode inspect and set them with --arch KEY=VALUE",
            path,
            ", ".join(assumed),
        )


def _dtype_counts(sd: dict[str, torch.Tensor]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in sd.values():
        name = str(v.dtype).removeprefix("torch.")
        counts[name] = counts.get(name, 0) + 1
    return counts
