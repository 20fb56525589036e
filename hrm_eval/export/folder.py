"""The model folder: `model.safetensors` + `config.json` + a `README.md` model card.

    DIR/
      model.safetensors   the state dict under its public key names (no `_orig_mod.` prefix),
                          the architecture also in the header metadata (a bare file is enough)
      config.json         the resolved architecture (`arch`), family, variant, task layout,
                          training step, sha256 of the source checkpoint
      README.md           model card stub; evaluation results when some were given

A folder that already holds any of these is written only when an earlier export wrote it (its
config.json says so) and `--overwrite` is given (`check_target`).

The tensors are the source checkpoint's own (same dtypes, same bits), so a model loaded from
the folder computes bit-identical outputs, and the same checkpoint gives the same weights file,
byte for byte (`safetensors_bytes`, with the safetensors release it was checked on; a test holds
it). Each file is written atomically (temp + rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hrm_eval.export.hub import card_metadata, front_matter, push_folder
from hrm_eval.models.checkpoint import (
    CONFIG_FILE,
    CONFIG_METADATA_KEY,
    WEIGHTS_FILE,
    LoadedCheckpoint,
    read_state_dict,
    run_data_path,
    strip_prefix,
)
from hrm_eval.models.hub import hub_origin
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write, atomic_write_json, atomic_write_text, sha256_file

FOLDER_FORMAT = "hrm-eval model folder"
FOLDER_FORMAT_VERSION = 1
MODEL_CARD = "README.md"


def check_target(out: str | Path, names: Sequence[str], overwrite: bool) -> None:
    """Before any work: an export replaces files only in a folder an earlier export wrote (its
    config.json says so), and only with `overwrite`; a user's own README.md or config.json is
    never replaced (evaluate's rule for --output)."""
    out = Path(out)
    present = [n for n in names if os.path.lexists(out / n)]
    if not present:
        return
    ours = False
    if (out / CONFIG_FILE).is_file():
        try:
            ours = guarded.read_json(out / CONFIG_FILE).get("format") == FOLDER_FORMAT
        except (HRMEvalError, AttributeError):
            ours = False
    if not ours:
        raise HRMEvalError(
            f"--output {out} holds {', '.join(present)}, which hrm-eval did not write (no hrm-eval {CONFIG_FILE} "
            "there); export into a new or empty folder"
        )
    if not overwrite:
        raise HRMEvalError(
            f"--output {out} holds an earlier export ({', '.join(present)}); add --overwrite to replace it"
        )


def write_model_folder(
    loaded: LoadedCheckpoint,
    out: str | Path,
    *,
    task: dict[str, Any] | None = None,
    results: dict[str, Any] | None = None,
) -> Path:
    """Write `loaded`'s checkpoint as a model folder in `out`; returns the weights file.
    `task`: the task layout (name, vocab_size, seq_len); `results`: evaluation results for the card."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sd, _ = strip_prefix(read_state_dict(loaded.path))
    # safetensors refuses tensors that share storage (tied weights, views): each gets its own copy
    tensors = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    arch = loaded.config.model_dump()
    data = safetensors_bytes(tensors, {"format": "pt", CONFIG_METADATA_KEY: json.dumps(arch)})

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)

    weights = atomic_write(out / WEIGHTS_FILE, write)
    config = folder_config(loaded, task=task, weights_sha256=sha256_file(weights))
    atomic_write_json(out / CONFIG_FILE, config)
    atomic_write_text(out / MODEL_CARD, model_card(config, results))
    return weights


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors' own serialization, its metadata map in sorted key order. The library writes
    that map in an order that changes from call to call, so the same weights gave files (and
    sha256 in config.json) that differed from one export to the next. The header is an 8-byte
    little-endian length, then JSON padded with spaces; sorting the keys keeps its length."""
    from safetensors.torch import save

    data = save(tensors, metadata=metadata)
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # not the library's compact JSON: leave its bytes as they are
        return data
    return data[:8] + text.ljust(size) + data[8 + size :]


def save_model(model: Any, out: str | Path) -> Path:
    """An in-memory ACTModel as a model folder (what `ACTModel.from_pretrained` reads back): its
    weights as they are now, config.json with its architecture (no source file: `source` is
    null), and the card. Returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c = model.config
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.inner.state_dict().items()}
    data = safetensors_bytes(tensors, {"format": "pt", CONFIG_METADATA_KEY: json.dumps(c.model_dump())})

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)

    weights = atomic_write(out / WEIGHTS_FILE, write)
    dtypes: dict[str, int] = {}
    for v in tensors.values():
        name = str(v.dtype).replace("torch.", "")
        dtypes[name] = dtypes.get(name, 0) + 1
    config = {
        "format": FOLDER_FORMAT,
        "format_version": FOLDER_FORMAT_VERSION,
        "family": c.family,
        "variant": c.variant,
        "arch": c.model_dump(),
        "task": None,
        "training_step": None,
        "source": None,
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(weights), "dtypes": dtypes},
        "num_trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "torch_version": torch.__version__,
    }
    atomic_write_json(out / CONFIG_FILE, config)
    atomic_write_text(out / "README.md", model_card(config))
    return out


def push_model(model: Any, repo_id: str, *, private: bool = False, revision: str | None = None) -> str:
    """`save_model` into a temporary folder, then upload it (`push_folder`); returns the commit's URL."""
    with tempfile.TemporaryDirectory(prefix="hrm-eval-push-") as tmp:
        return push_folder(save_model(model, tmp), repo_id, private=private, revision=revision)


def folder_config(loaded: LoadedCheckpoint, *, task: dict[str, Any] | None, weights_sha256: str) -> dict[str, Any]:
    c = loaded.config
    return {
        "format": FOLDER_FORMAT,
        "format_version": FOLDER_FORMAT_VERSION,
        "family": c.family,
        "variant": c.variant,
        "arch": c.model_dump(),
        "task": task,
        "training_step": loaded.step,
        # the run's dataset as its config records it: evaluating the folder without --data uses it
        "data_path": run_data_path(loaded.path)[0],
        "source": {
            "file": loaded.path.name,
            "sha256": loaded.sha256,
            "key_prefix": loaded.key_prefix,
            **({"hub": hub} if (hub := hub_origin(loaded.path)) else {}),  # exported from hf://: repo and commit
        },
        "weights": {"file": WEIGHTS_FILE, "sha256": weights_sha256, "dtypes": loaded.state_dict_dtypes},
        "num_trainable_parameters": loaded.num_trainable_parameters,
        "torch_version": torch.__version__,
    }


def model_card(config: dict[str, Any], results: dict[str, Any] | None = None) -> str:
    """A README.md stub: what the model is, how to load it, and its results when given."""
    arch = config["arch"]
    task = config.get("task") or {}
    lines = [
        front_matter(card_metadata(config, results)) + f"# {config['family'].upper()} model ({config['variant']})",
        "",
        (
            f"Exported by hrm-eval from `{config['source']['file']}` (sha256 `{config['source']['sha256'][:16]}...`), "
            f"training step {config['training_step']}."
            if config.get("source")
            else "Saved by hrm-eval (`hrm_eval.export.save_model`) from a model in memory."
        ),
        "",
        "| field | value |",
        "|---|---|",
        f"| trainable parameters | {config['num_trainable_parameters']:,} |",
        f"| hidden size / heads | {arch['hidden_size']} / {arch['num_heads']} |",
        f"| H_layers / L_layers | {arch['H_layers']} / {arch['L_layers']} |",
        f"| H_cycles / L_cycles | {arch['H_cycles']} / {arch['L_cycles']} |",
        f"| halt_max_steps | {arch['halt_max_steps']} |",
        f"| task | {task.get('name') or 'unknown'} (vocab {arch['vocab_size']}, seq_len {arch['seq_len']}) |",
        "",
        "Load it with hrm-eval (`--checkpoint` takes this folder):",
        "",
        "    python deploy.py --mode evaluate --checkpoint THIS_FOLDER --data DATA",
        "",
    ]
    if results:
        metrics = results.get("aggregate_metrics", {})
        lines += ["## Evaluation", "", "| metric | value |", "|---|---|"]
        names = {"accuracy": "token_accuracy"}  # the public metric name, and what it measures
        for key in ("total_puzzles", "exact_accuracy", "accuracy", "average_steps"):
            if key in metrics:
                value, name = metrics[key], names.get(key, key)
                text = f"{value:.4f}" if isinstance(value, float) else f"{value}"
                ci = metrics.get(f"{key}_ci95")
                text += f" (95% interval {ci[0]:.4f}-{ci[1]:.4f})" if ci else ""
                lines.append(f"| {name} | {text} |")
        data = results.get("provenance", {}).get("dataset", {})
        if data:
            lines += ["", f"Data: `{data.get('path', data.get('source', '?'))}`."]
        lines.append("")
    return "\n".join(lines)
