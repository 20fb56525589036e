"""ARC scoring: vote over augmented predictions, pass@k (strict and fractional), Kaggle submission.

Each prediction row (an augmented test puzzle's test input run through the model) is mapped back
to the original task: its name (`<id>_t<k>_<map>` or TRM's `<id>|||t<k>|||<map>`) gives the
augmentation, the cropped input and prediction are inverse-transformed (dihedral first, then the
colour map), and the restored input tells which of the task's test inputs it answers. Identical
predicted grids for one (task, test input) are pooled as [count, mean sigmoid(q_halt)] and ranked
by count, then mean q (ties keep the order in which the grids were first seen, as the public
notebook's stable sort does).

pass@k, two rules:
- strict (the HRM notebook): a task counts only when every test input has its answer in the top k;
- fractional (ARC's own rule, TRM's evaluator): a task scores the fraction of its test inputs
  answered within the top k.
Both are averaged over every task of the dataset's test split; a task without predictions scores 0.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hrm_eval.data.tasks.arc.augment import inverse_augment, parse_puzzle_name
from hrm_eval.data.tasks.arc.layout import (
    COLOUR_OFFSET,
    GRID_SIZE,
    SEQ_LEN,
    VOCAB_SIZE,
    crop_grid,
    crop_shapes,
    grid_hash,
)
from hrm_eval.data.tasks.arc.sources import one_line
from hrm_eval.data.tasks.base import TaskScorer
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_text

log = logging.getLogger("hrm_eval")

DEFAULT_KS = (1, 2, 10, 100, 1000)
SCORES_FILE = "arc_scores.json"
SUBMISSION_FILE = "submission.json"
EMPTY_ANSWER = [[0]]  # the Kaggle placeholder for a test input without any prediction
NUM_ATTEMPTS = 2


# ----------------------------------------------------------------------------------------------
# ground truth


class ArcTestSet:
    """The un-augmented test pairs of every task in a dataset's test split, in split order.

    The original puzzle of each group carries the plain task id; where a task only appears
    augmented, its first augmented puzzle is inverse-transformed instead."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        split = self.data_dir / "test"
        sets = _read_test_description(split)
        self.identifiers = _read_identifiers(self.data_dir / "identifiers.json")
        self.parsed = [parse_puzzle_name(n) for n in self.identifiers]
        try:
            arrays = {set_name: _load_set(split, set_name) for set_name in sets}
        except (OSError, ValueError) as e:
            raise HRMEvalError(f"cannot read the test split in {split}: {one_line(e)}") from None
        chosen = self._choose_sources(arrays, split)

        self.task_ids: list[str] = list(chosen)
        self.test_pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        # task id -> input grid hash -> test input indices with that input
        self.input_index: dict[str, dict[str, list[int]]] = {}
        for base, (set_name, p) in chosen.items():
            ids, indices, inputs, labels = arrays[set_name]
            _, t, cmap = self.parsed[int(ids[p])]
            rows = range(int(indices[p]), int(indices[p + 1]))
            pairs = [
                (inverse_augment(crop_grid(inputs[r]), t, cmap), inverse_augment(crop_grid(labels[r]), t, cmap))
                for r in rows
            ]
            self.test_pairs[base] = pairs
            lookup: dict[str, list[int]] = {}
            for i, (inp, _) in enumerate(pairs):
                lookup.setdefault(grid_hash(inp), []).append(i)
            self.input_index[base] = lookup

    def _choose_sources(self, arrays: dict[str, tuple], split: Path) -> dict[str, tuple[str, int]]:
        """task id -> (set name, puzzle index) of the puzzle its test pairs are read from: the
        un-augmented one where there is one, else the first augmented one."""
        chosen: dict[str, tuple[bool, str, int]] = {}
        for set_name, (ids, _, _, _) in arrays.items():
            for p, ident in enumerate(ids):
                self._check_identifier(int(ident), f"{split}/{set_name}__puzzle_identifiers.npy")
                base, t, cmap = self.parsed[int(ident)]
                plain = t is None and cmap is None
                if base not in chosen or (plain and not chosen[base][0]):
                    chosen[base] = (plain, set_name, p)
        return {base: (set_name, p) for base, (_, set_name, p) in chosen.items()}

    def _check_identifier(self, identifier: int, where: str) -> None:
        if not 0 <= identifier < len(self.identifiers):
            raise HRMEvalError(
                f"puzzle identifier {identifier} in {where} is beyond the "
                f"{len(self.identifiers)} names of {self.data_dir / 'identifiers.json'}"
            )


def _read_test_description(split: Path) -> list[str]:
    """The set names of the test split's dataset.json, which must describe ARC data."""
    description = guarded.mapping(
        guarded.read_json(split / "dataset.json", "dataset description (ARC scoring needs the test split)"),
        str(split / "dataset.json"),
        "a dataset description (a JSON object)",
    )
    sets = description.get("sets", ["all"])
    _check_arc_layout(description, split / "dataset.json")
    return sets


def _read_identifiers(path: Path) -> list[str]:
    names = guarded.read_json(path, "identifiers file", max_bytes=guarded.MAX_DATA_BYTES)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise HRMEvalError(f"{path} is not a list of names")
    return names


def _load_set(split: Path, set_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(puzzle_identifiers, puzzle_indices, inputs, labels) of one set; the token arrays memory-mapped."""
    return (
        np.load(split / f"{set_name}__puzzle_identifiers.npy"),
        np.load(split / f"{set_name}__puzzle_indices.npy"),
        np.load(split / f"{set_name}__inputs.npy", mmap_mode="r"),
        np.load(split / f"{set_name}__labels.npy", mmap_mode="r"),
    )


def _check_arc_layout(description: dict, where: Path) -> None:
    """ARC scoring reads every row as a 30x30 canvas: other data is a one-line error, not a reshape failure."""
    layout = (description.get("vocab_size"), description.get("seq_len"))
    if layout != (VOCAB_SIZE, SEQ_LEN):
        raise HRMEvalError(
            f"score needs ARC data (vocab_size {VOCAB_SIZE}, seq_len {SEQ_LEN}); {where} has "
            f"vocab_size {layout[0]}, seq_len {layout[1]} (other tasks are scored by --mode evaluate)"
        )


# ----------------------------------------------------------------------------------------------
# voting


def _sigmoid(x: np.ndarray) -> np.ndarray:
    import torch

    return torch.sigmoid(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()


def _as_numpy(x) -> np.ndarray:
    """A numpy view of a numpy array, list or torch tensor (bfloat16 / float16 become float32)."""
    if hasattr(x, "detach"):  # a torch tensor
        import torch

        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _token_ids(preds) -> np.ndarray:
    """Token ids [n, 900] from token ids or logits [n, 900, vocab] (argmax over the vocabulary)."""
    if hasattr(preds, "detach") and preds.ndim == 3:
        return preds.detach().argmax(dim=-1).cpu().numpy()  # in torch: no float copy of bf16 logits
    preds = _as_numpy(preds)
    return preds.argmax(axis=-1) if preds.ndim == 3 else preds


def _tidy(x: int | float) -> int | float:
    """A weighted count as an int where it is one (up to float rounding)."""
    return int(round(x)) if abs(x - round(x)) < 1e-9 else float(x)


def _cropped(tokens: np.ndarray, rows: int, cols: int) -> np.ndarray:
    grid = tokens.reshape(GRID_SIZE, GRID_SIZE)[:rows, :cols].astype(np.int64) - COLOUR_OFFSET
    return grid.astype(np.uint8)


class ArcVotePool:
    """Collects prediction rows (any number of batches, ranks or ensemble members), then scores them.

    Candidates rank by vote count, then mean sigmoid(q_halt); with `by_q`, by summed q first.
    Rows added with a `weight` count that much (an ensemble member's weight)."""

    def __init__(self, data_dir: str | os.PathLike, *, test_set: ArcTestSet | None = None, by_q: bool = False):
        self.test_set = test_set if test_set is not None else ArcTestSet(data_dir)
        self.by_q = by_q
        self.grids: dict[str, np.ndarray] = {}  # grid hash -> grid
        # (task id, test input index) -> grid hash -> [count, sum of q]  (insertion-ordered)
        self.votes: dict[tuple[str, int], dict[str, list[float]]] = {}
        self.num_rows = 0
        self.num_unmatched = 0
        self.seen_tasks: set = set()  # task ids of every row added (matched or not)
        self.weighted = False  # any weight other than 1: counts are sums of floats

    def add(
        self, identifiers, inputs, preds, q_halt_logits=None, *, where: str = "predictions", weight: float = 1.0
    ) -> None:
        """Add rows: puzzle identifiers [n], inputs [n, 900], preds [n, 900] (token ids) or
        logits [n, 900, vocab] (argmax taken), q_halt_logits [n] (None: all 0). Rows with
        identifier 0 (padding) are ignored. Each row counts `weight` votes."""
        w: float = 1 if weight == 1 else float(weight)  # unweighted counts stay ints
        self.weighted |= weight != 1
        identifiers = _as_numpy(identifiers).reshape(-1).astype(np.int64)
        preds = _token_ids(preds)
        inputs = _as_numpy(inputs).reshape(len(identifiers), -1)
        preds = preds.reshape(len(identifiers), -1)
        if inputs.shape[1] != SEQ_LEN or preds.shape[1] != SEQ_LEN:
            raise HRMEvalError(
                f"{where}: ARC rows must have {SEQ_LEN} tokens, got inputs {inputs.shape[1]} "
                f"and predictions {preds.shape[1]}"
            )
        q = np.zeros(len(identifiers)) if q_halt_logits is None else _as_numpy(q_halt_logits).reshape(-1)
        if len(q) != len(identifiers):
            raise HRMEvalError(f"{where}: {len(q)} q_halt_logits for {len(identifiers)} rows")
        q = _sigmoid(q)

        n_names = len(self.test_set.identifiers)
        bad = identifiers[(identifiers < 0) | (identifiers >= n_names)]
        if len(bad):
            raise HRMEvalError(
                f"{where}: puzzle identifier {int(bad[0])} is beyond the {n_names} names of "
                f"{self.test_set.data_dir / 'identifiers.json'} (predictions from another dataset?)"
            )
        keep = identifiers != 0
        identifiers, inputs, preds, q = identifiers[keep], inputs[keep], preds[keep], q[keep]
        in_rows, in_cols = crop_shapes(inputs)
        pr_rows, pr_cols = crop_shapes(preds)
        for k in range(len(identifiers)):
            self.num_rows += 1
            base, t, cmap = self.test_set.parsed[identifiers[k]]
            self.seen_tasks.add(base)
            lookup = self.test_set.input_index.get(base)
            if lookup is None:
                self.num_unmatched += 1
                continue
            inp = _cropped(inputs[k], in_rows[k], in_cols[k])
            matches = lookup.get(grid_hash(inverse_augment(inp, t, cmap)))
            if not matches:
                self.num_unmatched += 1
                continue
            pred = inverse_augment(_cropped(preds[k], pr_rows[k], pr_cols[k]), t, cmap)
            h = grid_hash(pred)
            self.grids.setdefault(h, pred)
            for i in matches:
                stats = self.votes.setdefault((base, i), {}).setdefault(h, [0, 0.0])
                stats[0] += w
                stats[1] += w * float(q[k])

    def ranked(self, task_id: str, index: int) -> list[tuple[str, int | float, float]]:
        """[(grid hash, count, mean q)] best first; ties keep the order grids were first seen in."""
        pooled = [(h, c, s / c if c else 0.0, s) for h, (c, s) in self.votes.get((task_id, index), {}).items()]
        if self.weighted or self.by_q:
            # float sums: equal weights added in another order must still tie
            def key(x):
                count, mean_q, sum_q = round(x[1], 12), round(x[2], 12), round(x[3], 12)
                return (sum_q, count) if self.by_q else (count, mean_q)
        else:

            def key(x):
                return x[1], x[2]

        return [(h, _tidy(c), q) for h, c, q, _ in sorted(pooled, key=key, reverse=True)]

    def result(self, ks: Sequence[int] = DEFAULT_KS, *, seen_tasks_only: bool = False) -> tuple[dict, dict]:
        """(scores, submission) : see `score_arc_predictions`. With `seen_tasks_only`, only the
        tasks that rows were added for count (a held-out or --limit-ed task is not a failure)."""
        ks = [int(k) for k in ks]
        test_set = self.test_set
        task_ids = [t for t in test_set.task_ids if t in self.seen_tasks] if seen_tasks_only else test_set.task_ids
        strict = {k: 0.0 for k in ks}
        fractional = {k: 0.0 for k in ks}
        records, submission, missing = [], {}, []
        num_inputs = 0
        for task_id in task_ids:
            pairs = test_set.test_pairs[task_id]
            inputs_rec, attempts = [], []
            solved = {k: 0 for k in ks}
            has_any = False
            for i, (_, label) in enumerate(pairs):
                ranked = self.ranked(task_id, i)
                has_any |= bool(ranked)
                label_h = grid_hash(label)
                rank = next((r + 1 for r, (h, _, _) in enumerate(ranked) if h == label_h), None)
                for k in ks:
                    solved[k] += rank is not None and rank <= k
                inputs_rec.append(
                    {
                        "index": i,
                        "num_predictions": sum(c for _, c, _ in ranked),
                        "num_candidates": len(ranked),
                        "correct_rank": rank,
                        "top": [
                            {"count": c, "mean_q": q, "correct": h == label_h} for h, c, q in ranked[:NUM_ATTEMPTS]
                        ],
                    }
                )
                grids = [self.grids[h].tolist() for h, _, _ in ranked[:NUM_ATTEMPTS]] or [EMPTY_ANSWER]
                grids += [grids[0]] * (NUM_ATTEMPTS - len(grids))
                attempts.append({f"attempt_{a + 1}": g for a, g in enumerate(grids)})
            n = len(pairs)
            num_inputs += n
            for k in ks:
                strict[k] += solved[k] == n
                fractional[k] += solved[k] / n
            if not has_any:
                missing.append(task_id)
            records.append({"task_id": task_id, "missing": not has_any, "test_inputs": inputs_rec})
            submission[task_id] = attempts
        num_tasks = len(task_ids)
        scores = {
            "num_tasks": num_tasks,
            "num_test_inputs": num_inputs,
            "num_predictions": self.num_rows,
            "num_unmatched_predictions": self.num_unmatched,
            "strict": {f"pass@{k}": (strict[k] / num_tasks if num_tasks else 0.0) for k in ks},
            "fractional": {f"pass@{k}": (fractional[k] / num_tasks if num_tasks else 0.0) for k in ks},
            "missing_tasks": missing,
            "tasks": records,
        }
        return scores, submission


# ----------------------------------------------------------------------------------------------
# entry points


def score_arc_arrays(
    data_dir, identifiers, inputs, preds, q_halt_logits=None, *, ks: Sequence[int] = DEFAULT_KS
) -> tuple[dict, dict]:
    """Score predictions held in memory (numpy arrays or torch tensors): `identifiers` [n],
    `inputs` [n, 900], `preds` [n, 900] token ids or logits [n, 900, vocab], `q_halt_logits` [n].
    Returns (scores, submission) as `score_arc_predictions` writes them."""
    pool = ArcVotePool(data_dir)
    pool.add(identifiers, inputs, preds, q_halt_logits, where="predictions")
    return pool.result(ks)


_RANK_SUFFIX = re.compile(r"_all_preds\.(\d+)$")


def find_prediction_files(prediction_files_or_prefix) -> list[Path]:
    """The `<prefix>_all_preds.<rank>` files, by rank. Accepts a prefix (`.../step_N`, or
    `.../step_N_all_preds`), one file, a folder holding exactly one such prefix, or a list of files."""
    if not isinstance(prediction_files_or_prefix, (str, os.PathLike)):
        files = [Path(p) for p in prediction_files_or_prefix]
        if not files:
            raise HRMEvalError("no ARC prediction files given")
        return files
    arg = os.fspath(prediction_files_or_prefix)
    if os.path.isfile(arg):
        return [Path(arg)]
    if os.path.isdir(arg):
        candidates = glob.glob(os.path.join(glob.escape(arg), "*_all_preds.*"))
        prefixes = sorted({_RANK_SUFFIX.sub("", c) for c in candidates if _RANK_SUFFIX.search(c)})
        if len(prefixes) > 1:
            names = ", ".join(os.path.basename(p) for p in prefixes)
            raise HRMEvalError(f"{arg} holds several prediction sets ({names}); pass one prefix, e.g. {prefixes[-1]}")
        arg = prefixes[0] if prefixes else os.path.join(arg, "")
    prefix = arg[: -len("_all_preds")] if arg.endswith("_all_preds") else arg
    found = [
        (int(m.group(1)), Path(p))
        for p in glob.glob(glob.escape(prefix) + "_all_preds.*")
        if (m := _RANK_SUFFIX.search(p)) and p[: m.start()] == prefix
    ]
    if not found:
        raise HRMEvalError(
            f"no prediction files match {prefix}_all_preds.<rank> "
            "(evaluate with --save-predictions, or eval_save_outputs in the public code, first)"
        )
    return [p for _, p in sorted(found)]


def missing_ranks(files: Sequence[Path]) -> list[int]:
    """Ranks below the highest one given that have no file (`*_all_preds.<rank>` names only)."""
    ranks = {int(m.group(1)) for p in files if (m := _RANK_SUFFIX.search(p.name))}
    return sorted(set(range(max(ranks) + 1)) - ranks) if ranks else []


def _load_prediction_file(path: Path) -> dict:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        # torch's zip reader says "[Errno 22] Invalid argument" or "failed reading zip archive"
        # for a file cut short: name what is wrong instead.
        raise HRMEvalError(
            f"cannot read ARC predictions {path}: not a complete PyTorch file (truncated or "
            f"damaged, {path.stat().st_size} bytes)"
        ) from None
    except Exception as e:  # noqa: BLE001 - torch.load of a foreign file fails in many ways (pickle, KeyError, ...)
        raise HRMEvalError(f"cannot read ARC predictions {path}: {one_line(e)}") from None
    if not isinstance(data, dict):
        raise HRMEvalError(f"ARC predictions {path} is not a dict of tensors")
    missing = [k for k in ("puzzle_identifiers", "inputs") if k not in data]
    if "preds" not in data and "logits" not in data:
        missing.append("logits (or preds)")
    if missing:
        has = ", ".join(sorted(map(str, data)))
        raise HRMEvalError(f"ARC predictions {path} lack {', '.join(missing)} (has {has})")
    return data


def _write_json_atomic(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj))


class ArcScorer(TaskScorer):
    """ARC's `PuzzleTask.scorer`: votes over the augmented rows of a dataset's test split, then
    pass@k (strict and fractional) and the Kaggle submission."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        *,
        ks: Sequence[int] = DEFAULT_KS,
        rank_by_q: bool = False,
        seen_tasks_only: bool = False,
        test_set: ArcTestSet | None = None,
    ):
        self.pool = ArcVotePool(data_dir, test_set=test_set, by_q=rank_by_q)
        self.ks = ks
        self.seen_tasks_only = seen_tasks_only

    def add(
        self, identifiers, inputs, preds, q_halt_logits=None, *, weight: float = 1.0, where: str = "predictions"
    ) -> None:
        self.pool.add(identifiers, inputs, preds, q_halt_logits, where=where, weight=weight)

    def finish(self, output_dir: str | os.PathLike | None = None) -> dict:
        """The full scores (see `score_arc_predictions`); with `output_dir`, `arc_scores.json` and
        `submission.json` are written there (each atomically)."""
        scores, submission = self.pool.result(self.ks, seen_tasks_only=self.seen_tasks_only)
        if output_dir is not None:
            write_scores(output_dir, scores, submission)
        return scores

    @staticmethod
    def summary(scores: dict) -> dict:
        """pass@k by rule and the number of tasks scored; the per-task records stay in arc_scores.json."""
        return {k: scores[k] for k in ("num_tasks", "strict", "fractional") if k in scores}


def write_scores(output_dir: str | os.PathLike, scores: dict, submission: dict) -> None:
    """`submission.json` and `arc_scores.json` in `output_dir`, each atomically."""
    out = Path(output_dir)
    _write_json_atomic(out / SUBMISSION_FILE, submission)
    _write_json_atomic(out / SCORES_FILE, scores)


def score_arc_predictions(
    data_dir, prediction_files_or_prefix, output_dir=None, *, ks: Sequence[int] = DEFAULT_KS
) -> dict:
    """Score the public `<prefix>_all_preds.<rank>` files against `data_dir`'s test split.

    Returns the scores: `strict` and `fractional` {"pass@k": fraction}, `num_tasks`,
    `missing_tasks`, counts, and per-task records (per test input: predictions, distinct
    candidates, 1-based rank of the correct answer or None, top-2 counts and mean q). With
    `output_dir`, writes `arc_scores.json` and the Kaggle-style `submission.json` there (each
    atomically). Without it, nothing is written (use `score_arc_arrays` for the submission)."""
    pool = ArcVotePool(data_dir)  # first: data that is not ARC is the first thing to hear about
    files = find_prediction_files(prediction_files_or_prefix)
    for path in files:
        data = _load_prediction_file(path)
        preds = data["preds"] if "preds" in data else data["logits"]
        pool.add(data["puzzle_identifiers"], data["inputs"], preds, data.get("q_halt_logits"), where=str(path))
        del data, preds
    scores, submission = pool.result(ks)
    scores["prediction_files"] = [str(p) for p in files]
    missing = missing_ranks(files)
    if missing:  # the public evaluation writes ranks 0..W-1: a gap means part of the test split is unscored
        scores["missing_ranks"] = missing
        log.warning(
            "ARC predictions: rank(s) %s missing (found %s): the scores cover only part of the test split",
            ", ".join(map(str, missing)),
            ", ".join(p.name for p in files),
        )
    if output_dir is not None:
        write_scores(output_dir, scores, submission)
    return scores
