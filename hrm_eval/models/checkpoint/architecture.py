"""A checkpoint's architecture: what its tensors show, what the files beside it and the
command line state, merged into one validated ModelConfig, and the check that the tensors fit it.

The architecture comes, field by field, from (highest first) the command line, `all_config.yaml`
beside the checkpoint (a model folder's `config.json`, a bare `.safetensors` file's metadata), a
model config YAML, the dataset, the tensors themselves, and the public defaults; every field
records its source, and a stated value that contradicts the tensors is an error naming the field.

Layer indices must run from 0 without gaps, and the key set and every shape are checked against
the architecture (on one meta-device layer per level) before the model is built.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from hrm_eval.models import ModelConfig, build_model
from hrm_eval.models.checkpoint.format import (
    ALL_CONFIG_FILE,
    CONFIG_FILE,
    CONFIG_METADATA_KEY,
    is_safetensors,
)
from hrm_eval.models.checkpoint.read import (
    SIZE_BUDGET_FACTOR,
    read_folder_config,
    read_safetensors,
    resolve_checkpoint_path,
)
from hrm_eval.models.config import (
    HRM_ARCH_NAME,
    PUBLIC_DEFAULTS,
    TRM_ARCH_NAME,
    UNWRITTEN_PUBLIC_DEFAULTS,
)
from hrm_eval.models.layers import mlp_width
from hrm_eval.resources import find
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.validation import short_repr

UNSTORED_BUFFER_ALLOWANCE = 64 << 20  # bytes of unstored buffers (rotary tables) beyond the file's budget
DATASET_FIELDS = ("seq_len", "vocab_size", "num_puzzle_identifiers")
# The two sources below every file: what the tensors show, and the public default for the rest.
FROM_TENSORS = "checkpoint tensors"
ASSUMED = "assumed (public default)"


# ---- what the tensors tell -------------------------------------------------------------------
def infer_from_tensors(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Architecture facts read off the (prefix-stripped) tensor names and shapes."""
    if "embed_tokens.embedding_weight" not in sd:
        raise HRMEvalError(
            "not an HRM/TRM checkpoint: no embed_tokens.embedding_weight tensor "
            f"(first keys: {', '.join(list(sd)[:3])})"
        )
    vocab, h = _matrix_shape(sd, "embed_tokens.embedding_weight")
    facts: dict[str, Any] = {"vocab_size": vocab, "hidden_size": h}

    def layer_count(level: str) -> int:
        # The count comes from the key names, so it must be proven before anything is built from it:
        # one stray `layers.200000.` key would otherwise build a 200001-layer model.
        ids = sorted({int(m.group(1)) for k in sd if (m := re.match(rf"{level}\.layers\.(\d+)\.", k))})
        if ids and ids != list(range(len(ids))):
            gap = next(i for i, n in enumerate(ids) if i != n)
            raise HRMEvalError(
                f"{level} layer indices must run from 0 without gaps: found {len(ids)} layers, "
                f"{level}.layers.{gap} missing (highest index {ids[-1]}); stray or missing tensors"
            )
        return len(ids)

    facts["L_layers"] = layer_count("L_level")
    H_layers = layer_count("H_level")
    facts["name"] = HRM_ARCH_NAME if H_layers else TRM_ARCH_NAME
    facts["H_layers"] = H_layers
    if not facts["L_layers"]:
        raise HRMEvalError("not an HRM/TRM checkpoint: no L_level.layers.* tensors")
    if H_layers == 0:
        facts["mlp_t"] = any(".mlp_t." in k for k in sd)

    if "puzzle_emb.weights" in sd:
        facts["num_puzzle_identifiers"], facts["puzzle_emb_ndim"] = _matrix_shape(sd, "puzzle_emb.weights")
    else:
        facts["puzzle_emb_ndim"] = 0
    if "embed_pos.embedding_weight" in sd:
        facts["pos_encodings"] = "learned"

    if "L_level.layers.0.mlp.gate_up_proj.weight" in sd:
        width = _matrix_shape(sd, "L_level.layers.0.mlp.gate_up_proj.weight")[0] // 2
        # Several expansions round to the same width; prefer the public 4, else the smallest.
        candidates = [4.0] + [k / 2 for k in range(1, 33)]
        facts["expansion"] = next((e for e in candidates if mlp_width(int(h), e) == width), width / h)
    facts["forward_dtype"] = str(sd["H_init"].dtype).removeprefix("torch.") if "H_init" in sd else None
    if facts["forward_dtype"] is None:
        del facts["forward_dtype"]
    return facts


def _matrix_shape(sd: dict[str, torch.Tensor], key: str) -> tuple[int, int]:
    """(rows, columns) of a tensor that must be a non-empty matrix."""
    shape = tuple(sd[key].shape)
    if len(shape) != 2 or min(shape) < 1:
        raise HRMEvalError(f"{key}: expected a 2-d tensor (rows, columns), the checkpoint has shape {shape}")
    return int(shape[0]), int(shape[1])


def full_seq_len_from_tensors(sd: dict[str, torch.Tensor]) -> int | None:
    if "embed_pos.embedding_weight" in sd:
        return _matrix_shape(sd, "embed_pos.embedding_weight")[0]
    if "L_level.layers.0.mlp_t.gate_up_proj.weight" in sd:
        return _matrix_shape(sd, "L_level.layers.0.mlp_t.gate_up_proj.weight")[1]
    return None


# ---- the config ------------------------------------------------------------------------------
def read_all_config(checkpoint_path: Path) -> dict[str, Any] | None:
    """The run's config: `all_config.yaml` beside the checkpoint; for a .safetensors file the
    model folder's `config.json`, else the architecture in the file's own metadata."""
    if is_safetensors(checkpoint_path):
        return _safetensors_config(checkpoint_path)
    cfg = checkpoint_path.parent / ALL_CONFIG_FILE
    if not os.path.lexists(cfg):  # something there that is not a file is said so, not skipped
        return None
    data = guarded.read_yaml(cfg, "run config")
    if not isinstance(data, dict):
        raise HRMEvalError(f"{cfg} is not a mapping")
    if not isinstance(data.get("arch") or {}, dict):
        raise HRMEvalError(
            f"{cfg}: 'arch' must be a mapping of architecture fields, got a {type(data['arch']).__name__}"
        )
    return data


def _safetensors_config(path: Path) -> dict[str, Any] | None:
    folder = read_folder_config(path)
    if folder is not None:
        return {"arch": folder["arch"]}
    metadata = read_safetensors(path, tensors=False)[1]
    text = metadata.get(CONFIG_METADATA_KEY)
    if text is None:
        return None
    arch = guarded.parse_json(text, f"{path}: the {CONFIG_METADATA_KEY} metadata")
    if not isinstance(arch, dict):
        raise HRMEvalError(f"{path}: the {CONFIG_METADATA_KEY} metadata is not a mapping")
    return {"arch": arch}


def resolve_config(
    sd: dict[str, torch.Tensor],
    *,
    all_config: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    origin: str = "checkpoint",
    require_seq_len: bool = True,
    config_name: str = ALL_CONFIG_FILE,
) -> tuple[ModelConfig, dict[str, str]]:
    """Merge the sources (see module doc) into a validated ModelConfig; returns (config, sources)."""
    facts = infer_from_tensors(sd)
    family = "trm" if facts["name"] == TRM_ARCH_NAME else "hrm"
    layers = [  # lowest priority first
        (ASSUMED, PUBLIC_DEFAULTS[family]),
        (FROM_TENSORS, facts),
        *_stated_layers(dataset, model_config, all_config, config_name, overrides),
    ]
    merged, sources = _merge_layers(layers, facts, family)
    config = _settle_seq_len(sd, merged, sources, origin, require_seq_len)
    return config, {k: sources[k] for k in sorted(sources) if k in ModelConfig.model_fields}


def _stated_layers(
    dataset: dict[str, Any] | None,
    model_config: dict[str, Any] | None,
    all_config: dict[str, Any] | None,
    config_name: str,
    overrides: dict[str, Any] | None,
) -> list[tuple[str, dict[str, Any]]]:
    """(source, values) of what files and the command line state, lowest priority first; a source
    that is absent (or empty) adds no layer."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if dataset:
        layers.append(("dataset.json", {k: dataset[k] for k in DATASET_FIELDS if k in dataset}))
    if model_config:
        layers.append(("model config", dict(model_config)))
    if all_config:
        layers.append((config_name, ModelConfig.arch_fields_from_all_config(all_config)))
    if overrides:
        layers.append(("command line", dict(overrides)))
    return layers


def _merge_layers(
    layers: list[tuple[str, dict[str, Any]]], facts: dict[str, Any], family: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """(merged values, field -> source): a later layer wins; a stated value is checked against the
    tensors' facts first. A field keeps "checkpoint tensors" as its source when a file only repeats
    what the tensors show (the tensors are the evidence; the file adds nothing)."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, values in layers:
        for k, v in values.items():
            if v is None:
                continue
            if k in facts and source not in (FROM_TENSORS, ASSUMED):
                _check_stated(k, v, source, facts, family)
            merged[k] = v
            if not (k in sources and sources[k] == FROM_TENSORS and not _differs(v, facts.get(k))):
                sources[k] = source
    merged.setdefault("num_puzzle_identifiers", 1)
    sources.setdefault("num_puzzle_identifiers", ASSUMED)
    return merged, sources


def _settle_seq_len(
    sd: dict[str, torch.Tensor], merged: dict[str, Any], sources: dict[str, str], origin: str, require_seq_len: bool
) -> ModelConfig:
    """The validated config, its seq_len from the dataset, a stated value, or the tensors (learned
    positions / mlp_t hold seq_len + the puzzle prefix, whose length the validated config knows);
    records in `sources` where seq_len came from when the tensors or nothing gave it."""
    full = full_seq_len_from_tensors(sd)
    if "seq_len" in merged:
        config = _validated(merged, sources, origin)
    elif full is None and require_seq_len:
        raise HRMEvalError(
            f"seq_len is unknown for {origin}: rope/none position encodings do not store it; "
            "give a dataset (--data) or --arch seq_len=N"
        )
    elif full is None:
        sources["seq_len"] = "unknown (rope/none positions do not store it; the dataset gives it)"
        config = _validated({**merged, "seq_len": 1}, sources, origin)
    else:
        sources["seq_len"] = FROM_TENSORS
        prefix = _validated({**merged, "seq_len": 1}, sources, origin).puzzle_prefix_len
        config = _validated({**merged, "seq_len": full - prefix}, sources, origin)
    if full is not None and full != config.full_seq_len:
        _refuse_positions(sd, full, config, sources)
    return config


def _refuse_positions(sd: dict[str, torch.Tensor], full: int, config: ModelConfig, sources: dict[str, str]) -> None:
    """The tensors hold `full` positions but the stated seq_len + prefix is another count."""
    what = "embed_pos.embedding_weight rows" if "embed_pos.embedding_weight" in sd else "mlp_t width"
    raise HRMEvalError(
        f"seq_len: the checkpoint's {what} give {full} positions (seq_len + puzzle prefix) "
        f"but seq_len {config.seq_len} ({sources['seq_len']}) + prefix {config.puzzle_prefix_len} "
        f"= {config.full_seq_len}"
    )


def _check_stated(k: str, v: Any, source: str, facts: dict[str, Any], family: str) -> None:
    """A value a file or the command line states must not contradict what the tensors show."""
    if k == "forward_dtype":
        return  # the stored dtype of H_init is a default, not a fact: computing in another is allowed
    if k == "name":
        stated = "trm" if "trm" in str(v).lower() else "hrm"
        if stated != family:
            raise HRMEvalError(
                f"arch name: {source} says a {stated.upper()} model ({v}) but the checkpoint's "
                f"tensors are a {family.upper()} ({'no ' if family == 'trm' else ''}H_level)"
            )
    elif k in DATASET_FIELDS and source == "dataset.json":
        if v != facts[k]:
            raise HRMEvalError(_dataset_mismatch(k, facts[k], v))
    elif k == "expansion" and _number(v) is not None:
        # Several expansions round to one MLP width: only a different width contradicts.
        h = facts["hidden_size"]
        stated_width, width = mlp_width(h, float(v)), mlp_width(h, float(facts[k]))
        if stated_width != width:
            raise HRMEvalError(
                f"expansion: {source} says {v} (MLP width {stated_width}) but the checkpoint's MLP width is {width}"
            )
    elif k != "expansion" and _differs(v, facts[k]):
        raise HRMEvalError(f"{k}: {source} says {v} but the checkpoint's tensors say {facts[k]}")


def _validated(values: dict[str, Any], sources: dict[str, str], origin: str) -> ModelConfig:
    """The ModelConfig, or one line naming the field, its value and where the value came from."""
    try:
        return ModelConfig(**{k: v for k, v in values.items() if k in ModelConfig.model_fields})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:  # a check across fields names them itself
            raise HRMEvalError(f"invalid model config for {origin}: {msg}") from None
        value = f" = {short_repr(err['input'])} (from {sources[loc]})" if loc in sources else ""
        raise HRMEvalError(f"invalid model config for {origin}: {loc}{value}: {msg}") from None


def _number(v: Any) -> float | None:
    """`v` as a finite float, or None (a non-number is left for the config validation to name)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _differs(a: Any, b: Any) -> bool:
    try:
        return float(a) != float(b)
    except (TypeError, ValueError, OverflowError):
        return str(a) != str(b)


def _dataset_mismatch(field: str, ckpt: Any, data: Any) -> str:
    what = {
        "num_puzzle_identifiers": "puzzle_emb.weights has {c} rows (puzzle identifiers) but the dataset's "
        "num_puzzle_identifiers is {d}: the checkpoint was trained on a different "
        "build of the dataset (other augmentation count or subset)",
        "vocab_size": "the checkpoint's vocabulary (embed_tokens) has {c} tokens but the dataset's "
        "vocab_size is {d}: "
        "this checkpoint was trained for another task",
        "seq_len": "the checkpoint was built for sequences of {c} tokens but the dataset's seq_len is {d}",
    }[field]
    return f"{field} mismatch: " + what.format(c=ckpt, d=data)


def config_source_name(path: Path) -> str:
    """What the architecture beside (or inside) a checkpoint file is called in `sources`."""
    if not is_safetensors(path):
        return ALL_CONFIG_FILE
    return CONFIG_FILE if read_folder_config(path) is not None else "safetensors metadata"


def alarming_assumptions(sources: dict[str, str]) -> list[str]:
    """The architecture values that were assumed where a checkpoint's config should state them:
    the usual cause of a silent 0% score (not the two that no all_config.yaml states, nor the
    identifier count of a model without puzzle embeddings)."""
    quiet = {*UNWRITTEN_PUBLIC_DEFAULTS, "num_puzzle_identifiers"}
    return [k for k, v in sources.items() if v.startswith("assumed") and k not in quiet]


# ---- the run's dataset (a config source) -------------------------------------------------------
def run_dataset(all_config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The sizes the dataset a run trained on states (all_config.yaml `data_path`, found as config
    paths are: from the working directory, then the data home; its test split's dataset.json),
    or None when it is not there. Only the sizes are read; resolve_config checks them."""
    data_path = (all_config or {}).get("data_path")
    if not isinstance(data_path, str) or not data_path:
        return None
    path = find(data_path) / "test" / "dataset.json"
    if not path.is_file():
        return None
    facts = guarded.mapping(guarded.read_json(path, "dataset file"), str(path), "a JSON object")
    return {k: facts[k] for k in DATASET_FIELDS if k in facts}


def run_data_path(checkpoint: str | Path) -> tuple[str | None, str]:
    """(the dataset the checkpoint's run trained on, as recorded, or None; where it is recorded):
    all_config.yaml's `data_path` beside a step file, a model folder's config.json `data_path`
    (export copies it from the source run)."""
    path = resolve_checkpoint_path(checkpoint)
    if is_safetensors(path):
        recorded = (read_folder_config(path) or {}).get("data_path")
        where = str(path.parent / CONFIG_FILE)
    else:
        recorded = (read_all_config(path) or {}).get("data_path")
        where = str(path.parent / ALL_CONFIG_FILE)
    return (recorded if isinstance(recorded, str) and recorded else None), where


def checkpoint_dataset(checkpoint: str | Path) -> Path:
    """The checkpoint's own run's dataset, found as every configured path is (the working
    directory, then the data home); one line naming what was looked for when it is not there.
    Evaluating without --data must never fall back to another model's data."""
    recorded, where = run_data_path(checkpoint)
    if recorded is None:
        raise HRMEvalError(
            f"--checkpoint {checkpoint}: without --data its own run's dataset is used, but {where} records "
            "no data_path; give --data"
        )
    found = find(recorded)
    if not found.exists():
        raise HRMEvalError(
            f"--checkpoint {checkpoint}: its run's dataset {recorded} (data_path in {where}) was not found "
            "(looked from the working directory, then the data home); give --data"
        )
    return found


# ---- the architecture the tensors must fit ---------------------------------------------------
def expected_state(config: ModelConfig) -> tuple[dict[str, tuple[int, ...]], int]:
    """(key -> shape of the state dict a model of `config` has, bytes of the buffers it does not store).

    Computed on the meta device from one layer per level, so the cost does not grow with the
    layer count; every layer of a level has the same tensors."""
    one = config.model_copy(update={"L_layers": 1, "H_layers": min(config.H_layers, 1)})
    with torch.device("meta"):
        inner = build_model(one).inner
    counts = {"H_level": config.H_layers, "L_level": config.L_layers}
    shapes: dict[str, tuple[int, ...]] = {}
    for key, v in inner.state_dict().items():
        m = re.match(r"^(H_level|L_level)\.layers\.0\.(.+)$", key)
        names = [f"{m.group(1)}.layers.{i}.{m.group(2)}" for i in range(counts[m.group(1)])] if m else [key]
        shapes.update({name: tuple(v.shape) for name in names})
    stored = set(inner.state_dict())
    unstored = sum(b.numel() * b.element_size() for name, b in inner.named_buffers() if name not in stored)
    return shapes, unstored


def check_architecture(sd: dict[str, torch.Tensor], config: ModelConfig, path: Path) -> None:
    """Key set and every shape against the config, before anything is allocated for the model."""
    expected, unstored = expected_state(config)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[0]})")
        raise HRMEvalError(f"checkpoint {path} does not fit a {config.variant} model: {'; '.join(parts)}")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise HRMEvalError(
                f"{k}: checkpoint shape {tuple(sd[k].shape)} but the config ({config.variant}, "
                f"hidden {config.hidden_size}, heads {config.num_heads}) expects {shape}"
            )
    budget = UNSTORED_BUFFER_ALLOWANCE + SIZE_BUDGET_FACTOR * path.stat().st_size
    if unstored > budget:
        raise HRMEvalError(
            f"checkpoint {path}: seq_len {config.seq_len} would need {unstored:,} bytes of position "
            f"tables, more than {budget:,} for a file of this size; refused"
        )


def count_state_values(config: ModelConfig) -> tuple[int, int]:
    """(values in the state dict incl. buffers, trainable parameters) of a config, without allocating."""
    with torch.device("meta"):
        model = build_model(config)
    state = sum(v.numel() for v in model.inner.state_dict().values())
    trainable = sum(p.numel() for p in model.parameters())
    return state, trainable
