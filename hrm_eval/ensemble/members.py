"""Ensemble members: loading them (they must share one task layout), running each once per
puzzle (and per test-time view), and caching what they predicted.

What a member predicted on a set of puzzles is kept as tensors: its final logits mapped back
to the original frame [V, N, L, C] in the model's forward dtype (lossless), q_halt / q_continue
logits [V, N], ACT steps and halted flags [V, N]. The cache file is keyed by the checkpoint's
sha256, the dataset fingerprint, the rows (split, limit), the resolved model config (dtype
included) and the views; another strategy on the same members and data loads it instead of
running the models again. Cache files are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.inference.engine import ACTEngine
from hrm_eval.models import ACTModel
from hrm_eval.models.losses import log_stablemax
from hrm_eval.ensemble.tta import View, logits_from_view, to_view, views_digest
from hrm_eval.utils.checkpoint import (LoadedCheckpoint, infer_from_tensors, load_checkpoint, read_all_config,
                                       read_state_dict, resolve_checkpoint_path, strip_prefix)
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_torch_save

log = logging.getLogger("hrm_eval")
CACHE_FORMAT = 1
PREDICTION_FIELDS = ("logits", "q_halt", "q_continue", "steps", "halted")


# ---- the puzzles -----------------------------------------------------------------------------
@dataclass
class PuzzleRows:
    """The examples one evaluation covers, in the dataset's order (first `limit`)."""
    inputs: torch.Tensor              # [N, L] int32
    labels: torch.Tensor              # [N, L] int32, -100 where not scored
    puzzle_identifiers: torch.Tensor  # [N] int32
    names: List[str]
    groups: np.ndarray                # [N] group (original puzzle and its augmentations), unique across sets
    source: str = ""

    def __len__(self) -> int:
        return len(self.names)

    @property
    def hashes(self) -> List[str]:
        """Content hash of every puzzle's input tokens: the same puzzle gives the same hash
        whatever file or position it comes from (used to prove calibration/score disjointness)."""
        rows = self.inputs.to(torch.int64).numpy()
        return [hashlib.sha256(r.tobytes()).hexdigest()[:20] for r in rows]

    def subset(self, index: np.ndarray) -> "PuzzleRows":
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return PuzzleRows(self.inputs[idx], self.labels[idx], self.puzzle_identifiers[idx],
                          [self.names[int(i)] for i in idx], self.groups[np.asarray(index, dtype=np.int64)], self.source)


def collect_rows(dataset: PuzzleDataset, limit: Optional[int] = None) -> PuzzleRows:
    inputs, labels, ids, names, groups = [], [], [], [], []
    group_offset = 0
    offsets: Dict[str, int] = {}
    for set_name, a in dataset.sets.items():
        offsets[set_name] = group_offset
        group_offset += len(a["group_indices"]) - 1
    for pb in dataset.iter_batches(4096, limit=limit):
        a = dataset.sets[pb.set_name]
        gi = np.asarray(a["group_indices"])
        inputs.append(pb.inputs)
        labels.append(pb.labels)
        ids.append(pb.puzzle_identifiers)
        names += [dataset.example_name(pb.set_name, int(e)) for e in pb.example_index]
        groups.append(np.searchsorted(gi, pb.puzzle_index, side="right") - 1 + offsets[pb.set_name])
    if not names:
        raise HRMEvalError(f"{dataset.source}: no puzzles to evaluate")
    return PuzzleRows(torch.cat(inputs), torch.cat(labels), torch.cat(ids), names, np.concatenate(groups).astype(np.int64),
                      dataset.source)


# ---- the members -----------------------------------------------------------------------------
@dataclass
class Member:
    name: str
    loaded: LoadedCheckpoint
    warnings: List[str] = field(default_factory=list)

    @property
    def model(self) -> ACTModel:
        return self.loaded.model

    @property
    def config(self):
        return self.loaded.config

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "path": str(self.loaded.path), "sha256": self.loaded.sha256, "step": self.loaded.step,
                "variant": self.config.variant, "dtype": self.config.forward_dtype, "loss_type": self.config.loss_type}


def member_names(paths: Sequence[Path]) -> List[str]:
    """Short unique display names: the file name, with the folder when file names repeat."""
    base = [p.name for p in paths]
    names = [f"{p.parent.name}/{p.name}" if base.count(p.name) > 1 else p.name for p in paths]
    seen: Dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def load_members(checkpoints: Sequence[str | Path], dataset: PuzzleDataset, *, device: str | torch.device = "cpu",
                 dtype: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None,
                 model_config: Optional[Dict[str, Any]] = None) -> List[Member]:
    """Load every member against the dataset; members must agree on the task layout.

    First the members are compared with each other (vocabulary, puzzle identifiers, stated
    sequence length), so a mismatch names the member that differs from member 1; then each is
    checked against the dataset's metadata."""
    if not checkpoints:
        raise HRMEvalError("an ensemble needs at least one checkpoint")
    paths = [resolve_checkpoint_path(c) for c in checkpoints]
    layouts = [checkpoint_layout(p) for p in paths]
    first = layouts[0]
    for i, lay in enumerate(layouts[1:], start=2):
        for key, what in (("vocab_size", "a vocabulary of {} tokens"), ("seq_len", "sequences of {} tokens"),
                          ("num_puzzle_identifiers", "{} puzzle identifiers (puzzle_emb rows)")):
            a, b = first.get(key), lay.get(key)
            if a is not None and b is not None and a != b:
                raise HRMEvalError(f"ensemble members disagree on {key}: member {i} ({paths[i - 1]}) has "
                                   f"{what.format(b)}, member 1 ({paths[0]}) has {what.format(a)}")
    names = member_names(paths)
    members = []
    for i, (path, name) in enumerate(zip(paths, names), start=1):
        try:
            loaded = load_checkpoint(path, dataset=dataset.metadata, overrides=overrides, model_config=model_config,
                                     device=device, dtype=dtype)
        except HRMEvalError as e:
            raise HRMEvalError(f"member {i} ({path}): {e}") from e
        members.append(Member(name, loaded))
    data_paths = {i: lay.get("data_path") for i, lay in enumerate(layouts, start=1) if lay.get("data_path")}
    if len(set(data_paths.values())) > 1:
        note = "members were trained on different data paths (" + ", ".join(
            f"member {i}: {p}" for i, p in data_paths.items()) + ")"
        for m in members:
            m.warnings.append(note)
        log.warning(note)
    return members


def checkpoint_layout(path: Path) -> Dict[str, Any]:
    """What a checkpoint states about its task layout, without building the model."""
    sd, _ = strip_prefix(read_state_dict(path))
    facts = infer_from_tensors(sd)
    out: Dict[str, Any] = {"vocab_size": facts["vocab_size"]}
    if facts.get("puzzle_emb_ndim", 0) > 0:
        out["num_puzzle_identifiers"] = facts.get("num_puzzle_identifiers")
    if "embed_pos.embedding_weight" in sd and facts.get("puzzle_emb_ndim", 0) == 0:
        out["seq_len"] = int(sd["embed_pos.embedding_weight"].shape[0])
    all_config = read_all_config(path)
    if all_config and all_config.get("data_path"):
        out["data_path"] = str(all_config["data_path"])
    return out


# ---- running and caching ---------------------------------------------------------------------
Predictions = Dict[str, torch.Tensor]


@torch.inference_mode()
def predict(model: ACTModel, rows: PuzzleRows, views: Sequence[View], *, device: str | torch.device = "cpu",
            batch_size: int = 64, progress: bool = False, desc: str = "member") -> Predictions:
    """Run `model` once on every puzzle in every view (fixed halting, through the ACT engine);
    logits come back in the original frame."""
    engine = ACTEngine(model, slots=batch_size, device=device)
    out: Dict[str, List[torch.Tensor]] = {k: [] for k in PREDICTION_FIELDS}
    bar = tqdm(total=len(rows) * len(views), unit="puzzle", desc=desc, disable=not progress, dynamic_ncols=True)
    for view in views:
        res = engine.run_all(to_view(rows.inputs, view), rows.puzzle_identifiers)
        out["logits"].append(logits_from_view(res.logits, view))
        out["q_halt"].append(res.q_halt_logits.float())
        out["q_continue"].append(res.q_continue_logits.float())
        out["steps"].append(res.steps.to(torch.int32))
        out["halted"].append(torch.ones(len(rows), dtype=torch.bool))  # every row ran to its last step
        bar.update(len(rows))
    bar.close()
    return {k: torch.stack(v) for k, v in out.items()}


def cache_key(member: Member, dataset_fingerprint: str, rows: PuzzleRows, split: str, limit: Optional[int],
              views: Sequence[View]) -> Dict[str, Any]:
    config = json.dumps(member.config.model_dump(), sort_keys=True)
    return {"format": CACHE_FORMAT, "checkpoint_sha256": member.loaded.sha256, "dataset_fingerprint": dataset_fingerprint,
            "split": split, "limit": limit, "num_rows": len(rows), "dtype": member.config.forward_dtype,
            "config_sha256": hashlib.sha256(config.encode()).hexdigest(), "num_views": len(views),
            "views": views_digest(views)}


def cache_path(cache_dir: Path, key: Dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"{key['checkpoint_sha256'][:12]}-{digest[:16]}.pt"


def load_cached(path: Path, key: Dict[str, Any], rows: PuzzleRows, num_views: int) -> Optional[Predictions]:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a broken cache file is recomputed, never trusted
        log.warning("ignoring unreadable prediction cache %s (%s); recomputing", path, type(e).__name__)
        return None
    if not isinstance(data, dict) or data.get("key") != key or any(k not in data for k in PREDICTION_FIELDS):
        log.warning("ignoring prediction cache %s: it was written for other inputs; recomputing", path)
        return None
    preds = {k: data[k] for k in PREDICTION_FIELDS}
    if preds["logits"].shape[:3] != (num_views, len(rows), rows.inputs.shape[1]):
        log.warning("ignoring prediction cache %s: wrong shape %s; recomputing", path, tuple(preds["logits"].shape))
        return None
    return preds


def member_predictions(member: Member, rows: PuzzleRows, views: Sequence[View], *, dataset_fingerprint: str,
                       split: str, limit: Optional[int], cache_dir: Optional[Path], device: str | torch.device = "cpu",
                       batch_size: int = 64, progress: bool = False) -> tuple[Predictions, Dict[str, Any]]:
    """(predictions, cache info): from the cache when it holds this member on these rows."""
    key = cache_key(member, dataset_fingerprint, rows, split, limit, views)
    path = cache_path(cache_dir, key) if cache_dir is not None else None
    if path is not None:
        cached = load_cached(path, key, rows, len(views))
        if cached is not None:
            log.info("member %s: predictions from cache %s", member.name, path)
            return cached, {"cache": "hit", "cache_file": str(path)}
    preds = predict(member.model, rows, views, device=device, batch_size=batch_size, progress=progress, desc=member.name)
    info: Dict[str, Any] = {"cache": "miss" if path is not None else "off"}
    if path is not None:
        atomic_torch_save(path, {"key": key, **preds})
        info["cache_file"] = str(path)
    return preds, info


def log_probs(logits: torch.Tensor, loss_type: str) -> torch.Tensor:
    """float64 log-probabilities under the member's own output normalisation (stablemax or softmax)."""
    x = logits.to(torch.float64)
    if loss_type == "stablemax_cross_entropy":
        return log_stablemax(x, dim=-1)
    return torch.log_softmax(x, dim=-1)


# ---- runs ------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_RUN = REPO_ROOT / "checkpoints" / "sudoku6-hrm"


def run_checkpoints(run_dir: str | Path) -> List[Path]:
    """Every step_<N> file of a training run directory, by step."""
    from hrm_eval.utils.checkpoint import STEP_RE

    run = Path(run_dir)
    if not run.is_dir():
        raise HRMEvalError(f"run directory not found: {run}")
    steps = sorted((int(m.group(1)), p) for p in run.iterdir() if p.is_file() and (m := STEP_RE.match(p.name)))
    if not steps:
        raise HRMEvalError(f"no step_<N> checkpoints in {run} (yet)")
    return [p for _, p in steps]


def run_data_path(run_dir: str | Path) -> Optional[Path]:
    """The dataset a run was trained on (`data_path` in its all_config.yaml), if it exists here:
    relative paths are tried from the working directory, then from the repository root."""
    cfg = read_all_config(Path(run_dir) / "all_config.yaml")
    if not cfg or not cfg.get("data_path"):
        return None
    p = Path(str(cfg["data_path"]))
    for candidate in ([p] if p.is_absolute() else [p, REPO_ROOT / p]):
        if candidate.exists():
            return candidate
    return None
