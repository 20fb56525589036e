"""Reading a checkpoint file: finding it, loading its tensors without running any code, and
checking them before anything is built from them.

Loading uses `torch.load(weights_only=True)`: a file that needs arbitrary pickled code is
refused, never executed. A `.safetensors` file holds no code at all; its reader checks that
every tensor's bytes lie inside the file before anything is read.

A hostile or broken file cannot make the loader allocate much more than the file itself:
tensor sizes are checked against the bytes the file holds (`check_tensors`); the architecture
checks (`hrm_eval.models.checkpoint.architecture`) do the rest before the model is built.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from hrm_eval.models.checkpoint.format import (
    CONFIG_FILE,
    SAFETENSORS_SUFFIX,
    WEIGHTS_FILE,
    is_safetensors,
    list_steps,
    step_number,
)
from hrm_eval.models.hub import is_hub_ref, localize
from hrm_eval.resources import checkpoint_by_name
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError

# Memory budget: the tensors may declare at most this multiple of the file's size (shared
# storage, e.g. tied weights, counts twice), and the built model at most this multiple plus
# a fixed allowance for the buffers a checkpoint does not store (rotary tables).
SIZE_BUDGET_FACTOR = 2
WEIGHT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
NONFINITE_CHUNK = 1 << 24  # values per NaN/Inf check: a 16 MB mask at most


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A step file, a `checkpoint` file, a run directory (its newest step) or a checkpoint's
    bare name (`step_3750`, found by `resources.checkpoint_by_name`), or a hub reference
    (`hf://OWNER/REPO[@REVISION][/PATH]`, fetched into the hub cache: hrm_eval.models.hub)
    -> the file to load."""
    p = Path(checkpoint_by_name(localize(path) if is_hub_ref(path) else Path(path)))
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


def step_of(path: Path) -> int | None:
    step = step_number(path.name)
    if step is not None:
        return step
    if is_safetensors(path):  # a model folder records the training step in its config.json
        step = (read_folder_config(path) or {}).get("training_step")
        return step if isinstance(step, int) else None
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
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


def read_safetensors(path: Path, *, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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
            read = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}  # noqa: SIM118 - a file handle, not a dict
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HRMEvalError(f"cannot read {path} (truncated or not a safetensors file?): {msg}") from e
    return read, metadata


def read_folder_config(path: Path) -> dict[str, Any] | None:
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


def check_tensors(sd: dict[str, torch.Tensor], path: Path) -> None:
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


def find_nonfinite(state_dict: dict[str, torch.Tensor]) -> list[tuple[str, int, int]]:
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
