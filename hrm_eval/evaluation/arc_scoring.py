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
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from hrm_eval.data.tasks.arc import (
    COLOUR_OFFSET, GRID_SIZE, SEQ_LEN, crop_grid, crop_shapes, grid_hash, inverse_augment, parse_puzzle_name,
)
from hrm_eval.utils.config import read_json
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_text

DEFAULT_KS = (1, 2, 10, 100, 1000)
SCORES_FILE = "arc_scores.json"
SUBMISSION_FILE = "submission.json"
EMPTY_ANSWER = [[0]]  # the Kaggle placeholder for a test input without any prediction
NUM_ATTEMPTS = 2


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ----------------------------------------------------------------------------------------------
# ground truth


class ArcTestSet:
    """The un-augmented test pairs of every task in a dataset's test split, in split order.

    The original puzzle of each group carries the plain task id; where a task only appears
    augmented, its first augmented puzzle is inverse-transformed instead."""

    def __init__(self, data_dir: Union[str, os.PathLike]):
        self.data_dir = Path(data_dir)
        ids_path = self.data_dir / "identifiers.json"
        self.identifiers: List[str] = read_json(ids_path, "identifiers.json")
        if not isinstance(self.identifiers, list) or not all(isinstance(n, str) for n in self.identifiers):
            raise HRMEvalError(f"{ids_path} is not a list of names")
        self.parsed = [parse_puzzle_name(n) for n in self.identifiers]

        split = self.data_dir / "test"
        description = read_json(split / "dataset.json", "dataset.json of the test split (ARC scoring needs it)")
        if not isinstance(description, dict):
            raise HRMEvalError(f"{split / 'dataset.json'} is not a dataset description (not a JSON object)")
        sets = description.get("sets", ["all"])

        # task id -> (puzzle is un-augmented, set name, puzzle index) of its chosen source puzzle
        chosen: Dict[str, Tuple[bool, str, int]] = {}
        arrays = {}
        try:
            for set_name in sets:
                ids = np.load(split / f"{set_name}__puzzle_identifiers.npy")
                indices = np.load(split / f"{set_name}__puzzle_indices.npy")
                inputs = np.load(split / f"{set_name}__inputs.npy", mmap_mode="r")
                labels = np.load(split / f"{set_name}__labels.npy", mmap_mode="r")
                arrays[set_name] = (ids, indices, inputs, labels)
                for p, ident in enumerate(ids):
                    self._check_identifier(int(ident), f"{split}/{set_name}__puzzle_identifiers.npy")
                    base, t, cmap = self.parsed[int(ident)]
                    plain = t is None and cmap is None
                    if base not in chosen or (plain and not chosen[base][0]):
                        chosen[base] = (plain, set_name, p)
        except (OSError, ValueError) as e:
            raise HRMEvalError(f"cannot read the test split in {split}: {_one_line(e)}") from None

        self.task_ids: List[str] = list(chosen)
        self.test_pairs: Dict[str, List[Tuple[np.ndarray, np.ndarray]]] = {}
        # task id -> input grid hash -> test input indices with that input
        self.input_index: Dict[str, Dict[str, List[int]]] = {}
        for base, (_, set_name, p) in chosen.items():
            ids, indices, inputs, labels = arrays[set_name]
            _, t, cmap = self.parsed[int(ids[p])]
            pairs = []
            for row in range(int(indices[p]), int(indices[p + 1])):
                pairs.append((inverse_augment(crop_grid(inputs[row]), t, cmap),
                              inverse_augment(crop_grid(labels[row]), t, cmap)))
            self.test_pairs[base] = pairs
            lookup: Dict[str, List[int]] = {}
            for i, (inp, _) in enumerate(pairs):
                lookup.setdefault(grid_hash(inp), []).append(i)
            self.input_index[base] = lookup

    def _check_identifier(self, identifier: int, where: str) -> None:
        if not 0 <= identifier < len(self.identifiers):
            raise HRMEvalError(f"puzzle identifier {identifier} in {where} is beyond the "
                               f"{len(self.identifiers)} names of {self.data_dir / 'identifiers.json'}")


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


def _cropped(tokens: np.ndarray, rows: int, cols: int) -> np.ndarray:
    grid = tokens.reshape(GRID_SIZE, GRID_SIZE)[:rows, :cols].astype(np.int64) - COLOUR_OFFSET
    return grid.astype(np.uint8)


class ArcVotePool:
    """Collects prediction rows (any number of batches or ranks), then scores them."""

    def __init__(self, data_dir: Union[str, os.PathLike], *, test_set: Optional[ArcTestSet] = None):
        self.test_set = test_set if test_set is not None else ArcTestSet(data_dir)
        self.grids: Dict[str, np.ndarray] = {}  # grid hash -> grid
        # (task id, test input index) -> grid hash -> [count, sum of q]  (insertion-ordered)
        self.votes: Dict[Tuple[str, int], Dict[str, List[float]]] = {}
        self.num_rows = 0
        self.num_unmatched = 0

    def add(self, identifiers, inputs, preds, q_halt_logits=None, *, where: str = "predictions") -> None:
        """Add rows: puzzle identifiers [n], inputs [n, 900], preds [n, 900] (token ids) or
        logits [n, 900, vocab] (argmax taken), q_halt_logits [n] (None: all 0). Rows with
        identifier 0 (padding) are ignored."""
        identifiers = _as_numpy(identifiers).reshape(-1).astype(np.int64)
        preds = _token_ids(preds)
        inputs = _as_numpy(inputs).reshape(len(identifiers), -1)
        preds = preds.reshape(len(identifiers), -1)
        if inputs.shape[1] != SEQ_LEN or preds.shape[1] != SEQ_LEN:
            raise HRMEvalError(f"{where}: ARC rows must have {SEQ_LEN} tokens, got inputs {inputs.shape[1]} "
                               f"and predictions {preds.shape[1]}")
        q = np.zeros(len(identifiers)) if q_halt_logits is None else _as_numpy(q_halt_logits).reshape(-1)
        if len(q) != len(identifiers):
            raise HRMEvalError(f"{where}: {len(q)} q_halt_logits for {len(identifiers)} rows")
        q = _sigmoid(q)

        n_names = len(self.test_set.identifiers)
        bad = identifiers[(identifiers < 0) | (identifiers >= n_names)]
        if len(bad):
            raise HRMEvalError(f"{where}: puzzle identifier {int(bad[0])} is beyond the {n_names} names of "
                               f"{self.test_set.data_dir / 'identifiers.json'} (predictions from another dataset?)")
        keep = identifiers != 0
        identifiers, inputs, preds, q = identifiers[keep], inputs[keep], preds[keep], q[keep]
        in_rows, in_cols = crop_shapes(inputs)
        pr_rows, pr_cols = crop_shapes(preds)
        for k in range(len(identifiers)):
            self.num_rows += 1
            base, t, cmap = self.test_set.parsed[identifiers[k]]
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
                stats[0] += 1
                stats[1] += float(q[k])

    def ranked(self, task_id: str, index: int) -> List[Tuple[str, int, float]]:
        """[(grid hash, count, mean q)] best first."""
        pooled = [(h, int(c), s / c) for h, (c, s) in self.votes.get((task_id, index), {}).items()]
        return sorted(pooled, key=lambda x: (x[1], x[2]), reverse=True)  # stable: ties keep first-seen order

    def result(self, ks: Sequence[int] = DEFAULT_KS) -> Tuple[dict, dict]:
        """(scores, submission) : see `score_arc_predictions`."""
        ks = [int(k) for k in ks]
        test_set = self.test_set
        strict = {k: 0.0 for k in ks}
        fractional = {k: 0.0 for k in ks}
        records, submission, missing = [], {}, []
        num_inputs = 0
        for task_id in test_set.task_ids:
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
                inputs_rec.append({
                    "index": i,
                    "num_predictions": sum(c for _, c, _ in ranked),
                    "num_candidates": len(ranked),
                    "correct_rank": rank,
                    "top": [{"count": c, "mean_q": q, "correct": h == label_h} for h, c, q in ranked[:NUM_ATTEMPTS]],
                })
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
        num_tasks = len(test_set.task_ids)
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


def score_arc_arrays(data_dir, identifiers, inputs, preds, q_halt_logits=None, *,
                     ks: Sequence[int] = DEFAULT_KS) -> Tuple[dict, dict]:
    """Score predictions held in memory (numpy arrays or torch tensors): `identifiers` [n],
    `inputs` [n, 900], `preds` [n, 900] token ids or logits [n, 900, vocab], `q_halt_logits` [n].
    Returns (scores, submission) as `score_arc_predictions` writes them."""
    pool = ArcVotePool(data_dir)
    pool.add(identifiers, inputs, preds, q_halt_logits, where="predictions")
    return pool.result(ks)


_RANK_SUFFIX = re.compile(r"_all_preds\.(\d+)$")


def find_prediction_files(prediction_files_or_prefix) -> List[Path]:
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
            raise HRMEvalError(f"{arg} holds several prediction sets ({', '.join(os.path.basename(p) for p in prefixes)}); "
                               "pass one prefix, e.g. " + prefixes[-1])
        arg = prefixes[0] if prefixes else os.path.join(arg, "")
    prefix = arg[: -len("_all_preds")] if arg.endswith("_all_preds") else arg
    found = [(int(m.group(1)), Path(p)) for p in glob.glob(glob.escape(prefix) + "_all_preds.*")
             if (m := _RANK_SUFFIX.search(p)) and p[: m.start()] == prefix]
    if not found:
        raise HRMEvalError(f"no prediction files match {prefix}_all_preds.<rank> "
                           "(evaluate with eval_save_outputs / --save-preds first)")
    return [p for _, p in sorted(found)]


def _load_prediction_file(path: Path) -> dict:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise HRMEvalError(f"cannot read ARC predictions {path}: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise HRMEvalError(f"ARC predictions {path} is not a dict of tensors")
    missing = [k for k in ("puzzle_identifiers", "inputs") if k not in data]
    if "preds" not in data and "logits" not in data:
        missing.append("logits (or preds)")
    if missing:
        raise HRMEvalError(f"ARC predictions {path} lack {', '.join(missing)} (has {', '.join(sorted(map(str, data)))})")
    return data


def _write_json_atomic(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj))


def score_arc_predictions(data_dir, prediction_files_or_prefix, output_dir=None, *,
                          ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Score the public `<prefix>_all_preds.<rank>` files against `data_dir`'s test split.

    Returns the scores: `strict` and `fractional` {"pass@k": fraction}, `num_tasks`,
    `missing_tasks`, counts, and per-task records (per test input: predictions, distinct
    candidates, 1-based rank of the correct answer or None, top-2 counts and mean q). With
    `output_dir`, writes `arc_scores.json` and the Kaggle-style `submission.json` there (each
    atomically). Without it, nothing is written (use `score_arc_arrays` for the submission)."""
    files = find_prediction_files(prediction_files_or_prefix)
    pool = ArcVotePool(data_dir)
    for path in files:
        data = _load_prediction_file(path)
        preds = data["preds"] if "preds" in data else data["logits"]
        pool.add(data["puzzle_identifiers"], data["inputs"], preds, data.get("q_halt_logits"), where=str(path))
        del data, preds
    scores, submission = pool.result(ks)
    scores["prediction_files"] = [str(p) for p in files]
    if output_dir is not None:
        out = Path(output_dir)
        _write_json_atomic(out / SUBMISSION_FILE, submission)
        _write_json_atomic(out / SCORES_FILE, scores)
    return scores
