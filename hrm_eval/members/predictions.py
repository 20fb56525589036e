"""Running checkpoints once per puzzle (and per view), caching what they predicted, and
scoring those predictions: shared by the ensemble and by checkpoint comparison.

What a checkpoint predicted on a set of puzzles is kept as tensors: its final logits mapped
back to the original frame [V, N, L, C] in the model's forward dtype (lossless), q_halt /
q_continue logits [V, N], ACT steps and halted flags [V, N]. The cache file is keyed by the
checkpoint's sha256, the dataset fingerprint, the rows (split, limit), the resolved model
config (dtype included) and the views, and lives in ONE cache directory by default
(`default_cache_dir()`), so `compare` after `ensemble` on the same run (or another ensemble
strategy) loads the predictions instead of running the models again. Cache files are read
with `torch.load(weights_only=True)`. While a member runs, its finished chunks of rows are saved
next to its cache file (`<cache>.parts/`, same key digest): an ensemble or compare killed part
way and run again loads them and runs only the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.open import open_dataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.evaluation.distributed import DistContext, failure_hook
from hrm_eval.evaluation.metrics import MetricSums
from hrm_eval.evaluation.scoring import score_rows
from hrm_eval.inference.engine import ACTEngine
from hrm_eval.inference.views import PuzzleView, logits_from_view, to_view, views_digest
from hrm_eval.models import ACTModel
from hrm_eval.models.checkpoint import (
    LoadedCheckpoint,
    infer_from_tensors,
    list_steps,
    read_all_config,
    read_state_dict,
    resolve_checkpoint_path,
    strip_prefix,
)
from hrm_eval.models.hub import is_hub_ref, localize
from hrm_eval.models.losses import log_stablemax
from hrm_eval.resources import bundled_run, find
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_torch_save

log = logging.getLogger("hrm_eval")
CACHE_FORMAT = 1
CACHE_ENV = "HRM_EVAL_CACHE_DIR"  # overrides the default cache directory
CHUNK = 256  # puzzles scored at once (bounds float64 memory)
PART_BATCHES = 64  # engine batches per saved chunk of a member's predictions (what a killed run keeps)
PREDICTION_FIELDS = ("logits", "q_halt", "q_continue", "steps", "halted")
Predictions = dict[str, torch.Tensor]


# ---- the puzzles -----------------------------------------------------------------------------
@dataclass
class PuzzleRows:
    """The examples one evaluation covers, in the dataset's order (first `limit`)."""

    inputs: torch.Tensor  # [N, L] int32
    labels: torch.Tensor  # [N, L] int32, -100 where not scored
    puzzle_identifiers: torch.Tensor  # [N] int32
    names: list[str]
    groups: np.ndarray  # [N] group (original puzzle and its augmentations), unique across sets
    source: str = ""

    def __len__(self) -> int:
        return len(self.names)

    @property
    def hashes(self) -> list[str]:
        """Content hash of every puzzle's input tokens: the same puzzle gives the same hash
        whatever file or position it comes from (used to prove calibration/score disjointness)."""
        rows = self.inputs.to(torch.int64).numpy()
        return [hashlib.sha256(r.tobytes()).hexdigest()[:20] for r in rows]

    def subset(self, index: np.ndarray) -> PuzzleRows:
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return PuzzleRows(
            self.inputs[idx],
            self.labels[idx],
            self.puzzle_identifiers[idx],
            [self.names[int(i)] for i in idx],
            self.groups[np.asarray(index, dtype=np.int64)],
            self.source,
        )


def collect_rows(dataset: PuzzleDataset, limit: int | None = None) -> PuzzleRows:
    inputs, labels, ids, names, groups = [], [], [], [], []
    group_offset = 0
    offsets: dict[str, int] = {}
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
    return PuzzleRows(
        torch.cat(inputs),
        torch.cat(labels),
        torch.cat(ids),
        names,
        np.concatenate(groups).astype(np.int64),
        dataset.source,
    )


def checkpoint_layout(path: Path) -> dict[str, Any]:
    """What a checkpoint states about its task layout, without building the model."""
    sd, _ = strip_prefix(read_state_dict(path))
    facts = infer_from_tensors(sd)
    out: dict[str, Any] = {"vocab_size": facts["vocab_size"]}
    if facts.get("puzzle_emb_ndim", 0) > 0:
        out["num_puzzle_identifiers"] = facts.get("num_puzzle_identifiers")
    if "embed_pos.embedding_weight" in sd and facts.get("puzzle_emb_ndim", 0) == 0:
        out["seq_len"] = int(sd["embed_pos.embedding_weight"].shape[0])
    all_config = read_all_config(path)
    if all_config and all_config.get("data_path"):
        out["data_path"] = str(all_config["data_path"])
    return out


def open_data_for_checkpoint(data: str | Path, *, split: str, task: str | None, checkpoint: Path) -> PuzzleDataset:
    """A dataset directory, or a raw puzzle file read with `checkpoint`'s vocabulary (raw files
    carry no metadata: the checkpoint decides which tokens are valid)."""
    path = Path(data)
    if path.is_dir() or not path.exists():
        return open_dataset(path, split=split, task=task)
    lay = checkpoint_layout(checkpoint)
    return open_dataset(
        path,
        split=split,
        task=task,
        vocab_size=lay["vocab_size"],
        num_puzzle_identifiers=lay.get("num_puzzle_identifiers") or 1,
    )


# ---- runs: a training directory's checkpoints and data -----------------------------------------
def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """Every step_<N> file of a training run directory, by step."""
    run = Path(run_dir)
    if not run.is_dir():
        raise HRMEvalError(f"run directory not found: {run}")
    steps = list_steps(run)
    if not steps:
        raise HRMEvalError(f"no step_<N> checkpoints in {run} (yet)")
    return steps


def run_data_path(run_dir: str | Path) -> Path | None:
    """The dataset a run was trained on (`data_path` in its all_config.yaml), if it exists here:
    relative paths are tried from the working directory, then from the data home (hrm_eval.resources)."""
    cfg = read_all_config(Path(run_dir) / "all_config.yaml")
    if not cfg or not cfg.get("data_path"):
        return None
    found = find(Path(str(cfg["data_path"])))
    return found if found.exists() else None


def resolve_checkpoints(checkpoints: Sequence[str | Path] | None, run: str | Path | None) -> tuple[list[Path], Path]:
    """(checkpoint files, the folder whose all_config.yaml names the data): the given files,
    or every step of `run`, or of the bundled run when neither is given."""
    if checkpoints and run is not None:
        raise HRMEvalError("give either --checkpoints or --run, not both")
    if checkpoints:
        paths = [resolve_checkpoint_path(c) for c in checkpoints]
        return paths, paths[0].parent
    # a hub run (hf://OWNER/REPO[/FOLDER]): every step_<N> of it, fetched into the hub cache
    run_dir = (localize(run, run=True) if is_hub_ref(run) else Path(run)) if run is not None else bundled_run()
    if run is None and not run_dir.is_dir():
        raise HRMEvalError(f"no --checkpoints given and the bundled run {run_dir} is not here")
    return run_checkpoints(run_dir), run_dir


# ---- checkpoints as members of a comparison or an ensemble -------------------------------------
@dataclass
class Member:
    name: str
    loaded: LoadedCheckpoint
    warnings: list[str] = field(default_factory=list)

    @property
    def model(self) -> ACTModel:
        return self.loaded.model

    @property
    def config(self):
        return self.loaded.config

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.loaded.path),
            "sha256": self.loaded.sha256,
            "step": self.loaded.step,
            "variant": self.config.variant,
            "dtype": self.config.forward_dtype,
            "loss_type": self.config.loss_type,
        }


def member_names(paths: Sequence[Path]) -> list[str]:
    """Short unique display names: the file name, with the folder when file names repeat."""
    base = [p.name for p in paths]
    names = [f"{p.parent.name}/{p.name}" if base.count(p.name) > 1 else p.name for p in paths]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


# ---- running and caching ---------------------------------------------------------------------
def default_cache_dir() -> Path:
    """The prediction cache shared by `ensemble` and `compare`: $HRM_EVAL_CACHE_DIR, else
    $XDG_CACHE_HOME/hrm-eval/predictions, else ~/.cache/hrm-eval/predictions. Outside any
    output folder on purpose: outputs are per run, the predictions of a checkpoint are not."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "hrm-eval" / "predictions"


@torch.inference_mode()
def predict(
    model: ACTModel,
    rows: PuzzleRows,
    views: Sequence[PuzzleView],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    desc: str = "member",
    parts_dir: Path | None = None,
    part_batches: int = PART_BATCHES,
    dist: DistContext | None = None,
) -> Predictions | None:
    """Run `model` once on every puzzle in every view (fixed halting, through the ACT engine);
    logits come back in the original frame. With `parts_dir`, each chunk of rows (whole engine
    batches) is saved there as it finishes and a chunk already there is loaded instead: a killed
    run resumes. Under torchrun (`dist`) the chunks are dealt out to the ranks in turn and rank 0
    gathers them: it returns the predictions, the other ranks None."""
    dist = dist if dist is not None else DistContext()
    engine = ACTEngine(model, slots=batch_size, device=device)
    # whole engine batches per chunk: every puzzle runs in the batch it runs in without chunks,
    # so with fixed halting the numbers are bit for bit those of one process, whatever K is
    batches = -(-len(rows) // batch_size)
    chunk = batch_size * max(1, min(part_batches, -(-batches // dist.world_size)))
    chunks = [
        (v, start, min(chunk, len(rows) - start)) for v in range(len(views)) for start in range(0, len(rows), chunk)
    ]
    phase = dist.phase("predict")
    bar = tqdm(
        total=len(rows) * len(views),
        unit="puzzle",
        desc=desc,
        disable=not (progress and dist.is_main),
        dynamic_ncols=True,
    )
    fail = failure_hook(dist)
    mine: dict[tuple[int, int], Predictions] = {}
    for v, start, n in chunks[dist.rank :: dist.world_size]:
        dist.check_peers()
        path = parts_dir / f"view{v}-rows{start}-{start + n}.pt" if parts_dir is not None else None
        piece = _load_part(path, n) if path is not None else None
        if piece is None:
            piece = _predict_rows(engine, rows, views[v], slice(start, start + n))
            if path is not None:
                atomic_torch_save(path, piece)
        mine[(v, start)] = piece
        bar.update(dist.add_done(n, f"{phase}/done") - bar.n)
        if fail is not None:
            fail()
    dist.wait_all(lambda done: bar.update(done - bar.n), phase)
    bar.close()
    gathered = dist.gather(mine)
    if gathered is None:
        return None
    pieces = {k: p for part in gathered for k, p in part.items()}
    by_view = [[pieces[(v, start)] for w, start, _ in chunks if w == v] for v in range(len(views))]
    return {k: torch.stack([torch.cat([p[k] for p in ps]) for ps in by_view]) for k in PREDICTION_FIELDS}


def _predict_rows(engine: ACTEngine, rows: PuzzleRows, view: PuzzleView, sl: slice) -> Predictions:
    res = engine.run_all(to_view(rows.inputs[sl], view), rows.puzzle_identifiers[sl])
    return {
        "logits": logits_from_view(res.logits, view),
        "q_halt": res.q_halt_logits.float(),
        "q_continue": res.q_continue_logits.float(),
        "steps": res.steps.to(torch.int32),
        "halted": torch.ones(len(res.steps), dtype=torch.bool),  # every row ran to its last step
    }


def _load_part(path: Path, n: int) -> Predictions | None:
    """A chunk saved by an interrupted run (atomic writes: complete or absent), None when unusable."""
    if not path.is_file():
        return None
    try:
        part = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - recomputed, never trusted
        return None
    if not isinstance(part, dict) or any(k not in part or len(part[k]) != n for k in PREDICTION_FIELDS):
        return None
    return part


def cache_key(
    member: Member,
    dataset_fingerprint: str,
    rows: PuzzleRows,
    split: str,
    limit: int | None,
    views: Sequence[PuzzleView],
) -> dict[str, Any]:
    config = json.dumps(member.config.model_dump(), sort_keys=True)
    return {
        "format": CACHE_FORMAT,
        "checkpoint_sha256": member.loaded.sha256,
        "dataset_fingerprint": dataset_fingerprint,
        "split": split,
        "limit": limit,
        "num_rows": len(rows),
        "dtype": member.config.forward_dtype,
        "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
        "num_views": len(views),
        "views": views_digest(list(views)),
    }


def cache_path(cache_dir: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"{key['checkpoint_sha256'][:12]}-{digest[:16]}.pt"


def load_cached(path: Path, key: dict[str, Any], rows: PuzzleRows, num_views: int) -> Predictions | None:
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


def member_predictions(
    member: Member,
    rows: PuzzleRows,
    views: Sequence[PuzzleView],
    *,
    dataset_fingerprint: str,
    split: str,
    limit: int | None,
    cache_dir: Path | None,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    dist: DistContext | None = None,
) -> tuple[Predictions | None, dict[str, Any]]:
    """(predictions, cache info): from the cache when it holds this member on these rows;
    `cache_dir=None` turns the cache off. Under torchrun every rank runs its share and rank 0
    gets the predictions (the other ranks: None); rank 0's cache decides for all of them."""
    dist = dist if dist is not None else DistContext()
    key = cache_key(member, dataset_fingerprint, rows, split, limit, views)
    path = cache_path(cache_dir, key) if cache_dir is not None else None
    cached = load_cached(path, key, rows, len(views)) if path is not None and dist.is_main else None
    if dist.broadcast(cached is not None):
        log.info("member %s: predictions from cache %s", member.name, path)
        return cached, {"cache": "hit", "cache_file": str(path)}
    # the chunks of a member in progress live next to its cache file, under the same key digest
    parts = path.with_suffix(".parts") if path is not None else None
    if parts is not None and parts.is_dir():
        log.info("member %s: resuming from the finished chunks in %s", member.name, parts)
    preds = predict(
        member.model,
        rows,
        views,
        device=device,
        batch_size=batch_size,
        progress=progress,
        desc=member.name,
        parts_dir=parts,
        dist=dist,
    )
    info: dict[str, Any] = {"cache": "miss" if path is not None else "off"}
    if path is not None:
        if preds is not None:
            atomic_torch_save(path, {"key": key, **preds})
            info["cache_file"] = str(path)
        dist.barrier()  # the cache file is complete before any rank lets its chunks go
        shutil.rmtree(parts, ignore_errors=True)  # type: ignore[arg-type]
    return preds, info


def log_probs(logits: torch.Tensor, loss_type: str) -> torch.Tensor:
    """float64 log-probabilities under the member's own output normalisation (stablemax or softmax)."""
    x = logits.to(torch.float64)
    if loss_type == "stablemax_cross_entropy":
        return log_stablemax(x, dim=-1)
    return torch.log_softmax(x, dim=-1)


# ---- scoring what a member predicted ---------------------------------------------------------
@dataclass
class Scored:
    """One set of answers on the scored rows: the summed metrics and, per row, what the
    analysis needs (exactness, the answer, its confidence and how many voters backed it)."""

    metrics: dict[str, Any]
    exact: torch.Tensor  # [N] bool
    answers: torch.Tensor  # [N, L]
    q: torch.Tensor  # [N] q_halt logit (confidence)
    support: torch.Tensor  # [N]
    num_candidates: torch.Tensor  # [N]


def score_member(
    preds: Predictions,
    rows: PuzzleRows,
    index: np.ndarray,
    *,
    loss_type: str,
    task: PuzzleTask | None,
    view: int = 0,
) -> Scored:
    """One member in one view on rows `index`, scored exactly as `evaluate` scores it (its own loss)."""
    sums, parts = MetricSums(), []
    for start in range(0, len(index), CHUNK):
        idx = torch.as_tensor(index[start : start + CHUNK], dtype=torch.long)
        logits, q = preds["logits"][view, idx], preds["q_halt"][view, idx]
        s = score_rows(
            logits,
            rows.labels[idx],
            q,
            loss_type=loss_type,
            halted=preds["halted"][view, idx],
            inputs=rows.inputs[idx],
            task=task,
        )
        sums.add(s, preds["steps"][view, idx])
        parts.append(
            (
                s.exact,
                s.answers,
                q.double(),
                torch.ones(len(idx), dtype=torch.float64),
                torch.ones(len(idx), dtype=torch.long),
            )
        )
    return Scored(sums.summary(verified=task is not None), *[torch.cat(x) for x in zip(*parts)])
