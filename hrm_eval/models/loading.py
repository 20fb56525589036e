"""Checkpoint restore with validation.

Accepts what the public training scripts write: a `step_<N>` file (or a published
`checkpoint` file, or a run directory, then its newest `step_<N>`), with any of the key
prefixes `_orig_mod.model.inner.`, `model.inner.` or none; and what `--mode export` writes:
a model folder (`model.safetensors` + `config.json`) or a bare `.safetensors` file (its
architecture in the file's metadata). The architecture comes, field by
field, from (highest first) the command line, `all_config.yaml` beside the checkpoint, a model
config YAML, the tensors themselves, and the public defaults; every field records its source,
and a stated value that contradicts the tensors is an error naming the field.

Loading uses `torch.load(weights_only=True)`: a file that needs arbitrary pickled code is
refused, never executed. A `.safetensors` file holds no code at all; its reader checks that
every tensor's bytes lie inside the file before anything is read.

A hostile or broken file cannot make the loader allocate much more than the file itself:
tensor sizes are checked against the bytes the file holds, layer indices
must run from 0 without gaps, and the key set and every shape are checked against the
architecture (on one meta-device layer per level) before the model is built.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from pydantic import BaseModel, ValidationError

from hrm_eval.models import ACTModel, ModelConfig, build_model
from hrm_eval.models.config import (
    HRM_ARCH_NAME,
    PUBLIC_DEFAULTS,
    TRM_ARCH_NAME,
    UNWRITTEN_PUBLIC_DEFAULTS,
    check_arch_names,
)
from hrm_eval.models.hub import is_hub_ref, localize
from hrm_eval.models.layers import RotaryEmbedding, mlp_width
from hrm_eval.resources import find, find_checkpoint, is_checkpoint_name
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import sha256_file
from hrm_eval.utils.validation import short_repr

log = logging.getLogger("hrm_eval")

KEY_PREFIXES = ("_orig_mod.model.inner.", "model.inner.", "_orig_mod.inner.", "inner.", "_orig_mod.")
STEP_RE = re.compile(r"^step_(\d+)$")
# Memory budget: the tensors may declare at most this multiple of the file's size (shared
# storage, e.g. tied weights, counts twice), and the built model at most this multiple plus
# a fixed allowance for the buffers a checkpoint does not store (rotary tables).
SIZE_BUDGET_FACTOR = 2
UNSTORED_BUFFER_ALLOWANCE = 64 << 20
DATASET_FIELDS = ("seq_len", "vocab_size", "num_puzzle_identifiers")
WEIGHT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
NONFINITE_CHUNK = 1 << 24  # values per NaN/Inf check: a 16 MB mask at most
# The two sources below every file: what the tensors show, and the public default for the rest.
FROM_TENSORS = "checkpoint tensors"
ASSUMED = "assumed (public default)"
# The model folder `--mode export` writes (the Hugging Face layout: weights + config.json).
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SAFETENSORS_SUFFIX = ".safetensors"
CONFIG_METADATA_KEY = "hrm_eval_config"  # a bare .safetensors file's architecture, in its header metadata


@dataclass
class LoadedCheckpoint:
    model: ACTModel
    config: ModelConfig
    path: Path
    step: Optional[int]
    sha256: str
    key_prefix: str
    sources: Dict[str, str]  # field -> where its value came from
    state_dict_dtypes: Dict[str, int]  # dtype name -> number of tensors
    num_state_values: int  # every value in the state dict, buffers included
    num_trainable_parameters: int
    nonfinite: List[Tuple[str, int, int]] = field(default_factory=list)  # (key, #NaN, #Inf)

    @property
    def assumed(self) -> List[str]:
        """Fields set to the public default because no file or flag stated them; a summary
        should point at them (and at --mode inspect) when a score looks wrong."""
        return [k for k, v in self.sources.items() if v.startswith("assumed")]


# ---- finding and reading the file ------------------------------------------------------------
def list_steps(directory: str | Path) -> List[Path]:
    """The `step_<N>` files of a run directory, numerically by step (not by name: 10 after 9)."""
    d = Path(directory)
    steps = sorted((int(m.group(1)), c) for c in d.iterdir() if c.is_file() and (m := STEP_RE.match(c.name)))
    return [c for _, c in steps]


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A step file, a `checkpoint` file, a run directory (its newest step) or a checkpoint's
    bare name (`step_3750`, found by `resources.find_checkpoint`), or a hub reference
    (`hf://OWNER/REPO[@REVISION][/PATH]`, fetched into the hub cache: hrm_eval.models.hub)
    -> the file to load."""
    p = localize(path) if is_hub_ref(path) else Path(path)
    if is_checkpoint_name(p):
        p = find_checkpoint(p)
    if not p.exists():
        raise HRMEvalError(f"checkpoint not found: {p}")
    if p.is_file():
        return p
    if p.is_dir() and p.suffix.lower() in (SAFETENSORS_SUFFIX, ".onnx"):  # named as a file: meant as one
        raise HRMEvalError(f"checkpoint {p} is a directory, expected a {p.suffix.lower()} file")
    if not p.is_dir():  # a device, FIFO or socket: reading it would block or never end
        raise HRMEvalError(
            f"checkpoint {p} is a {guarded.path_kind(p.stat().st_mode)}, expected a checkpoint file or run directory"
        )
    for name in ("checkpoint", WEIGHTS_FILE):  # present but not a file: say so, not "no checkpoint"
        if os.path.lexists(p / name) and not (p / name).is_file() and not list_steps(p):
            guarded.expect_file(p / name, "checkpoint")
    steps = list_steps(p)
    if steps:
        return steps[-1]
    if (p / "checkpoint").is_file():
        return p / "checkpoint"
    if (p / WEIGHTS_FILE).is_file():
        return p / WEIGHTS_FILE
    raise HRMEvalError(f"no step_<N> or checkpoint file in directory {p} (nor a model folder's {WEIGHTS_FILE})")


def is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == SAFETENSORS_SUFFIX


def step_of(path: Path) -> Optional[int]:
    m = STEP_RE.match(path.name)
    if m:
        return int(m.group(1))
    if is_safetensors(path):  # a model folder records the training step in its config.json
        step = (read_folder_config(path) or {}).get("training_step")
        return step if isinstance(step, int) else None
    return None


def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """The raw state dict, loaded safely on the CPU and checked to be floating tensors whose
    declared sizes the file can hold."""
    if path.suffix.lower() == ".onnx":
        raise HRMEvalError(
            f"{path} is an ONNX graph: --mode inspect reads it; to evaluate in onnxruntime give the source "
            "checkpoint with --backend onnxruntime"
        )
    obj: Any = read_safetensors(path)[0] if is_safetensors(path) else _torch_load(path)
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):  # some tools nest the weights one level down
            if isinstance(obj.get(key), dict):
                obj = obj[key]
    if not isinstance(obj, dict):
        raise HRMEvalError(f"{path} is not a state dict of tensors (it holds a {type(obj).__name__})")
    if not obj:
        raise HRMEvalError(f"{path} is not a state dict of tensors (it holds an empty dict)")
    bad = next((k for k, v in obj.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise HRMEvalError(f"{path} is not a state dict of tensors (entry {str(bad)!r} is a {type(obj[bad]).__name__})")
    check_tensors(obj, path)
    return obj


def read_safetensors(path: Path, *, tensors: bool = True) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """(tensors, header metadata) of a .safetensors file (`tensors=False`: the metadata only).
    The library validates the header before reading any tensor: every tensor's byte range must
    lie inside the file and match its shape and dtype, so a hostile header cannot make it
    allocate more than the file holds."""
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError as e:
        raise HRMEvalError(
            f"{path}: reading .safetensors needs the safetensors package (pip install safetensors)"
        ) from e
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            read = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HRMEvalError(f"cannot read {path} (truncated or not a safetensors file?): {msg}") from e
    return read, metadata


def read_folder_config(path: Path) -> Optional[Dict[str, Any]]:
    """The `config.json` beside a .safetensors file (a model folder), None when there is none."""
    cfg = path.parent / CONFIG_FILE
    if not is_safetensors(path) or not os.path.lexists(cfg):
        return None
    data = guarded.read_json(cfg, "model folder config")
    if not isinstance(data, dict) or not isinstance(data.get("arch"), dict):
        raise HRMEvalError(f"{cfg}: expected a mapping with an 'arch' mapping (the model folder's architecture)")
    return data


def _torch_load(path: Path) -> Any:
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols: the error below says it all
            warnings.simplefilter("ignore")
            # mmap: the tensors stay file pages until used, and the model takes them as they are
            # (_restore_model); the legacy (non-zip) format cannot be mapped
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        raise HRMEvalError(_refusal(path, e)) from e
    except Exception as e:  # noqa: BLE001 - random bytes make torch.load fail in many ways (KeyError, ...)
        msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}" if str(e).strip() else type(e).__name__
        raise HRMEvalError(f"cannot read checkpoint {path} (truncated or corrupt?): {msg}") from e
    return obj


def check_tensors(sd: Dict[str, torch.Tensor], path: Path) -> None:
    """Floating dtypes only (integer weights would load and score a silent 0%), and no tensor
    larger than its own data: an expanded or strided view can declare a terabyte from a few
    bytes, which any full-size operation (NaN scan, copy into the model) would allocate."""
    bad = next((k for k, v in sd.items() if v.layout != torch.strided), None)
    if bad is not None:  # a sparse tensor can declare any size with no data at all
        raise HRMEvalError(
            f"checkpoint {path}: tensor {bad} is {str(sd[bad].layout).removeprefix('torch.')}; "
            "model weights must be dense tensors"
        )
    # By name, not "is floating point": float8 passes that test and then breaks the NaN scan;
    # bool, integer and complex weights would load and score a silent 0%.
    bad = next((k for k, v in sd.items() if v.dtype not in WEIGHT_DTYPES), None)
    if bad is not None:
        raise HRMEvalError(
            f"checkpoint {path}: tensor {bad} has dtype {str(sd[bad].dtype).removeprefix('torch.')}, "
            "which is not supported; model weights must be floating point: float32, bfloat16, float16 or float64"
        )
    total = 0
    for k, v in sd.items():
        nbytes = v.numel() * v.element_size()
        if nbytes > v.untyped_storage().nbytes():
            raise HRMEvalError(
                f"checkpoint {path}: tensor {k} declares shape {tuple(v.shape)} ({nbytes:,} bytes) "
                f"but holds only {v.untyped_storage().nbytes():,} bytes of data"
            )
        total += nbytes
    file_size = path.stat().st_size
    if total > SIZE_BUDGET_FACTOR * file_size:
        raise HRMEvalError(
            f"checkpoint {path}: its tensors declare {total:,} bytes but the file holds {file_size:,} "
            "(tensors sharing data); refused"
        )


def _refusal(path: Path, e: BaseException) -> str:
    """One line for torch's weights-only rejection, without its advice to load the file unsafely."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found or re.search(r"\b(global|class)\b", text.split("WeightsUnpickler error:")[-1], re.IGNORECASE):
        what = f"GLOBAL {found.group(1)}" if found else "a reference to a Python class or function"
        return (
            f"{path}: refused: the file contains pickled code ({what}, which would run arbitrary Python); "
            "hrm-eval never runs code from a checkpoint"
        )
    return f"cannot read checkpoint {path}: {_pickle_reason(text)}; the file is corrupt or not a PyTorch state dict"


def _pickle_reason(text: str) -> str:
    """The informative line of torch's long error, with its sentences about `weights_only` left out."""
    after = text.split("WeightsUnpickler error:", 1)[-1]
    for line in after.splitlines():
        line = line.strip().split(". Please use", 1)[0].rstrip(".")
        if line and "weights_only" not in line and not line.startswith(("Weights only load failed", "Check the doc")):
            return line
    return "the safe loader rejected it"


def strip_prefix(state_dict: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], str]:
    """Bare key names and the prefix that was removed ('' when none)."""
    for prefix in KEY_PREFIXES:
        if all(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items()}, prefix
    return dict(state_dict), ""


def find_nonfinite(state_dict: Dict[str, torch.Tensor]) -> List[Tuple[str, int, int]]:
    """(key, NaN count, Inf count) of every floating tensor that holds NaN or Inf.

    Checked in chunks of NONFINITE_CHUNK values and counted with count_nonzero: summing a whole
    table's NaN mask would first widen it to int64, 8 bytes a value (1.6 GB for a 200M-value
    puzzle-embedding table)."""
    found = []
    for k, v in state_dict.items():
        if not v.is_floating_point():
            continue
        nan = inf = 0
        for chunk in v.reshape(-1).split(NONFINITE_CHUNK):
            if not bool(torch.isfinite(chunk).all()):
                nan += int(torch.count_nonzero(torch.isnan(chunk)))
                inf += int(torch.count_nonzero(torch.isinf(chunk)))
        if nan or inf:
            found.append((k, nan, inf))
    return found


# ---- what the tensors tell -------------------------------------------------------------------
def infer_from_tensors(sd: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """Architecture facts read off the (prefix-stripped) tensor names and shapes."""
    if "embed_tokens.embedding_weight" not in sd:
        raise HRMEvalError(
            "not an HRM/TRM checkpoint: no embed_tokens.embedding_weight tensor "
            f"(first keys: {', '.join(list(sd)[:3])})"
        )
    vocab, h = _matrix_shape(sd, "embed_tokens.embedding_weight")
    facts: Dict[str, Any] = {"vocab_size": vocab, "hidden_size": h}

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


def _matrix_shape(sd: Dict[str, torch.Tensor], key: str) -> Tuple[int, int]:
    """(rows, columns) of a tensor that must be a non-empty matrix."""
    shape = tuple(sd[key].shape)
    if len(shape) != 2 or min(shape) < 1:
        raise HRMEvalError(f"{key}: expected a 2-d tensor (rows, columns), the checkpoint has shape {shape}")
    return int(shape[0]), int(shape[1])


def _full_seq_len_from_tensors(sd: Dict[str, torch.Tensor]) -> Optional[int]:
    if "embed_pos.embedding_weight" in sd:
        return _matrix_shape(sd, "embed_pos.embedding_weight")[0]
    if "L_level.layers.0.mlp_t.gate_up_proj.weight" in sd:
        return _matrix_shape(sd, "L_level.layers.0.mlp_t.gate_up_proj.weight")[1]
    return None


# ---- the config ------------------------------------------------------------------------------
def read_all_config(checkpoint_path: Path) -> Optional[Dict[str, Any]]:
    """The run's config: `all_config.yaml` beside the checkpoint; for a .safetensors file the
    model folder's `config.json`, else the architecture in the file's own metadata."""
    if is_safetensors(checkpoint_path):
        return _safetensors_config(checkpoint_path)
    cfg = checkpoint_path.parent / "all_config.yaml"
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


def _safetensors_config(path: Path) -> Optional[Dict[str, Any]]:
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
    sd: Dict[str, torch.Tensor],
    *,
    all_config: Optional[Dict[str, Any]] = None,
    model_config: Optional[Dict[str, Any]] = None,
    dataset: Optional[Dict[str, Any]] = None,
    overrides: Optional[Dict[str, Any]] = None,
    origin: str = "checkpoint",
    require_seq_len: bool = True,
    config_name: str = "all_config.yaml",
) -> Tuple[ModelConfig, Dict[str, str]]:
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
    dataset: Optional[Dict[str, Any]],
    model_config: Optional[Dict[str, Any]],
    all_config: Optional[Dict[str, Any]],
    config_name: str,
    overrides: Optional[Dict[str, Any]],
) -> List[Tuple[str, Dict[str, Any]]]:
    """(source, values) of what files and the command line state, lowest priority first; a source
    that is absent (or empty) adds no layer."""
    layers: List[Tuple[str, Dict[str, Any]]] = []
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
    layers: List[Tuple[str, Dict[str, Any]]], facts: Dict[str, Any], family: str
) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """(merged values, field -> source): a later layer wins; a stated value is checked against the
    tensors' facts first. A field keeps "checkpoint tensors" as its source when a file only repeats
    what the tensors show (the tensors are the evidence; the file adds nothing)."""
    merged: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
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
    sd: Dict[str, torch.Tensor], merged: Dict[str, Any], sources: Dict[str, str], origin: str, require_seq_len: bool
) -> ModelConfig:
    """The validated config, its seq_len from the dataset, a stated value, or the tensors (learned
    positions / mlp_t hold seq_len + the puzzle prefix, whose length the validated config knows);
    records in `sources` where seq_len came from when the tensors or nothing gave it."""
    full = _full_seq_len_from_tensors(sd)
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


def _refuse_positions(sd: Dict[str, torch.Tensor], full: int, config: ModelConfig, sources: Dict[str, str]) -> None:
    """The tensors hold `full` positions but the stated seq_len + prefix is another count."""
    what = "embed_pos.embedding_weight rows" if "embed_pos.embedding_weight" in sd else "mlp_t width"
    raise HRMEvalError(
        f"seq_len: the checkpoint's {what} give {full} positions (seq_len + puzzle prefix) "
        f"but seq_len {config.seq_len} ({sources['seq_len']}) + prefix {config.puzzle_prefix_len} "
        f"= {config.full_seq_len}"
    )


def _check_stated(k: str, v: Any, source: str, facts: Dict[str, Any], family: str) -> None:
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


def _validated(values: Dict[str, Any], sources: Dict[str, str], origin: str) -> ModelConfig:
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


def _number(v: Any) -> Optional[float]:
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


# ---- the whole restore -----------------------------------------------------------------------
def load_checkpoint(
    path: str | Path,
    *,
    dataset: Optional[Dict[str, Any] | BaseModel] = None,
    overrides: Optional[Dict[str, Any]] = None,
    model_config: Optional[Dict[str, Any]] = None,
    device: str | torch.device = "cpu",
    dtype: Optional[str] = None,
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
    sd: Dict[str, torch.Tensor],
    all_config: Optional[Dict[str, Any]],
    dataset: Optional[Dict[str, Any] | BaseModel],
    require_seq_len: bool,
) -> Optional[Dict[str, Any]]:
    """The dataset facts the config is checked against (see `load_checkpoint`): `dataset`, else,
    when seq_len is needed and the tensors do not tell it, those of the dataset the run trained
    on (None when there is none)."""
    if dataset is None and require_seq_len and _full_seq_len_from_tensors(sd) is None:
        dataset = _run_dataset(all_config)
    if isinstance(dataset, BaseModel):
        return dataset.model_dump()
    return dataset


def _check_finite(sd: Dict[str, torch.Tensor], path: Path, allow_nonfinite: bool) -> List[Tuple[str, int, int]]:
    """`find_nonfinite`'s list; a tensor with NaN or Inf is an error unless `allow_nonfinite`."""
    nonfinite = find_nonfinite(sd)
    if nonfinite and not allow_nonfinite:
        k, nan, inf = nonfinite[0]
        more = f" (and {len(nonfinite) - 1} more tensors)" if len(nonfinite) > 1 else ""
        raise HRMEvalError(f"checkpoint {path} holds non-finite values: {k} has {nan} NaN and {inf} Inf{more}")
    return nonfinite


def _restore_model(sd: Dict[str, torch.Tensor], config: ModelConfig, device: str | torch.device) -> ACTModel:
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
    raw: Dict[str, torch.Tensor],
    prefix: str,
    sources: Dict[str, str],
    nonfinite: List[Tuple[str, int, int]],
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


def config_source_name(path: Path) -> str:
    """What the architecture beside (or inside) a checkpoint file is called in `sources`."""
    if not is_safetensors(path):
        return "all_config.yaml"
    return CONFIG_FILE if read_folder_config(path) is not None else "safetensors metadata"


def _run_dataset(all_config: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
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


def run_data_path(checkpoint: str | Path) -> Tuple[Optional[str], str]:
    """(the dataset the checkpoint's run trained on, as recorded, or None; where it is recorded):
    all_config.yaml's `data_path` beside a step file, a model folder's config.json `data_path`
    (export copies it from the source run)."""
    path = resolve_checkpoint_path(checkpoint)
    if is_safetensors(path):
        recorded = (read_folder_config(path) or {}).get("data_path")
        where = str(path.parent / CONFIG_FILE)
    else:
        recorded = (read_all_config(path) or {}).get("data_path")
        where = str(path.parent / "all_config.yaml")
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


def alarming_assumptions(sources: Dict[str, str]) -> List[str]:
    """The architecture values that were assumed where a checkpoint's config should state them:
    the usual cause of a silent 0% score (not the two that no all_config.yaml states, nor the
    identifier count of a model without puzzle embeddings)."""
    quiet = {*UNWRITTEN_PUBLIC_DEFAULTS, "num_puzzle_identifiers"}
    return [k for k, v in sources.items() if v.startswith("assumed") and k not in quiet]


def _warn_assumed(path: Path, sources: Dict[str, str]) -> None:
    """Say loudly when `alarming_assumptions` finds any."""
    assumed = alarming_assumptions(sources)
    if assumed:
        log.warning(
            "%s: no all_config.yaml or model config states %s; assumed the public defaults. If the "
            "results look wrong, compare with --mode inspect and set them with --arch KEY=VALUE",
            path,
            ", ".join(assumed),
        )


def expected_state(config: ModelConfig) -> Tuple[Dict[str, Tuple[int, ...]], int]:
    """(key -> shape of the state dict a model of `config` has, bytes of the buffers it does not store).

    Computed on the meta device from one layer per level, so the cost does not grow with the
    layer count; every layer of a level has the same tensors."""
    one = config.model_copy(update={"L_layers": 1, "H_layers": min(config.H_layers, 1)})
    with torch.device("meta"):
        inner = build_model(one).inner
    counts = {"H_level": config.H_layers, "L_level": config.L_layers}
    shapes: Dict[str, Tuple[int, ...]] = {}
    for key, v in inner.state_dict().items():
        m = re.match(r"^(H_level|L_level)\.layers\.0\.(.+)$", key)
        names = [f"{m.group(1)}.layers.{i}.{m.group(2)}" for i in range(counts[m.group(1)])] if m else [key]
        shapes.update({name: tuple(v.shape) for name in names})
    stored = set(inner.state_dict())
    unstored = sum(b.numel() * b.element_size() for name, b in inner.named_buffers() if name not in stored)
    return shapes, unstored


def check_architecture(sd: Dict[str, torch.Tensor], config: ModelConfig, path: Path) -> None:
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


def _dtype_counts(sd: Dict[str, torch.Tensor]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for v in sd.values():
        name = str(v.dtype).removeprefix("torch.")
        counts[name] = counts.get(name, 0) + 1
    return counts


def count_state_values(config: ModelConfig) -> Tuple[int, int]:
    """(values in the state dict incl. buffers, trainable parameters) of a config, without allocating."""
    with torch.device("meta"):
        model = build_model(config)
    state = sum(v.numel() for v in model.inner.state_dict().values())
    trainable = sum(p.numel() for p in model.parameters())
    return state, trainable
