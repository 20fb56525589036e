"""Solving puzzles nobody has solved: a puzzle in its natural form in, the model's answer out.

    from hrm_eval import solve
    s = solve("checkpoints/sudoku6-hrm", "356.2..24...")    # a checkpoint (path or name) or a model
    s.answer, s.verified, s.steps, s.q_halt_probability

    solver = Solver("checkpoints/sudoku6-hrm")              # load once, solve many (a service)
    solutions = solver.solve_all([p1, p2, p3], return_steps=True)

The puzzle goes through the task registry (`parse_puzzle` / `encode` on the way in,
`decode_answer` and the task's rule check `verify` on the way out) and through the ACT engine
with a halting policy (adaptive by default: the model decides when it is done). The task is
detected from the model's vocabulary and the puzzle when not given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_eval.data.csv_source import RowError, read_puzzle_csv
from hrm_eval.data.jsonl import IGNORE, read_jsonl_puzzles
from hrm_eval.data.tasks import all_tasks, detect_task, get_task
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy
from hrm_eval.inference.halting import ADAPTIVE, HaltingMode
from hrm_eval.inference.runner import FinishedRows
from hrm_eval.inference.scaling import ScaledRows, ScaledRunner, ScalingPolicy
from hrm_eval.models.act import ACTModel
from hrm_eval.models.checkpoint import LoadedCheckpoint, load_checkpoint
from hrm_eval.utils import guarded
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger(__name__)
SLOTS = 64  # puzzles in flight at once: a small list is one engine batch


@dataclass
class Solution:
    """The model's answer to one puzzle."""

    task: str
    puzzle: Any  # the puzzle in the task's natural form (Sudoku: board text, `.` for a blank)
    answer: Any  # the answer in the same form (ARC: a list of rows)
    tokens: list[int]  # the predicted tokens [seq_len]
    verified: bool | None  # valid by the task's rules; None where the task has none (ARC)
    steps: int  # ACT steps run
    max_steps: int  # the most the halting policy allowed
    q_halt_probability: float  # sigmoid(q_halt) after the last step: the model's confidence it is done
    seconds: float  # wall time of the solve call, divided among the puzzles it solved
    name: str | None = None  # where the puzzle came from (a file row), when known
    step_answers: list[Any] | None = None  # the answer after each step (return_steps=True)
    step_q_halt_probabilities: list[float] | None = None  # sigmoid(q_halt) after each step (return_steps)
    expected: Any | None = None  # a known answer given with the puzzle (a file row's), else None
    # test-time scaling (None when off): attempts run, ACT steps over all of them, the 1-based
    # attempt whose answer passed the rule check (None: none did), how the answer was chosen
    attempts: int | None = None
    act_steps_total: int | None = None
    solved_at_attempt: int | None = None
    selected_by: str | None = None

    @property
    def correct(self) -> bool | None:
        """Equal to the known answer; None when none was given."""
        return None if self.expected is None else self.answer == self.expected

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["correct"] = self.correct
        return out


class Solver:
    """A model (or checkpoint) ready to solve puzzles of one task.

    `model_or_checkpoint`: an ACTModel, a LoadedCheckpoint, or a checkpoint path / name (loaded
    on `device` in `dtype`). `task`: a task name; detected from the first puzzle when None.
    `halting`: adaptive (the model's own rule), fixed (every step) or threshold
    (sigmoid(q_halt) >= `threshold`). `scaling`: test-time scaling (a ScalingPolicy, or "verify"
    with `budget` / `views` / `noise` / `seed`); off by default."""

    def __init__(
        self,
        model_or_checkpoint: Any,
        task: str | None = None,
        *,
        halting: HaltingMode = ADAPTIVE,
        threshold: float = 0.5,
        min_steps: int = 1,
        max_steps: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        overrides: dict[str, Any] | None = None,
        model_config: dict[str, Any] | None = None,
        scaling: ScalingPolicy | str = "off",
        budget: int | None = None,
        views: int = 8,
        noise: float = 0.0,
        seed: int = 0,
    ):
        try:
            self.policy = HaltingPolicy(halting, threshold=threshold, min_steps=min_steps, max_steps=max_steps)
        except ValueError as e:
            raise HRMEvalError(f"solve: {e}") from None
        if not isinstance(scaling, ScalingPolicy):
            scaling = ScalingPolicy.checked(scaling, budget=budget, views=views, noise=noise, seed=seed)
        self.scaling = scaling
        self.task: PuzzleTask | None = get_task(task) if task else None
        self._load_options = {"overrides": dict(overrides or {}), "model_config": model_config, "dtype": dtype}
        self.model: ACTModel | None = None
        self.checkpoint: Path | None = None
        self.device: torch.device | None = None
        self.vocab_size = 0
        self.seq_len: int | None = None  # None until the task says it (a rope checkpoint does not)
        self._owned = False  # a model we loaded ourselves: its weights may be cast once to the forward dtype
        self._set_model(model_or_checkpoint, device)
        if self.task is not None and self.task.vocab_size != self.vocab_size:
            raise HRMEvalError(
                f"solve: task {self.task.name} ({self.task.describe_layout()}) does not fit the model "
                f"(vocab_size {self.vocab_size}); give the task the model was trained on or leave it out"
            )

    # ---- the model -----------------------------------------------------------------------------
    def _set_model(self, source: Any, device: str | None) -> None:
        if isinstance(source, LoadedCheckpoint):
            self.checkpoint, source = source.path, source.model
        if isinstance(source, ACTModel):
            self.model = source
            self.vocab_size, self.seq_len = source.config.vocab_size, source.config.seq_len
            self.device = torch.device(device) if device else next(source.parameters()).device
            return
        if not isinstance(source, (str, Path)):
            raise HRMEvalError(f"solve: expected a model, a LoadedCheckpoint or a checkpoint path, got {type(source)}")
        self.device = resolve_device(device or "auto")
        # A raw puzzle carries no dataset: the checkpoint may not state seq_len (rope models do
        # not store it); then the task's layout gives it, once the task is known.
        probe = load_checkpoint(source, require_seq_len=False, **self._load_options)  # type: ignore[arg-type]
        self.checkpoint = probe.path
        log.info(
            "solve with %s (step %s)",
            probe.path,
            probe.step,
            extra={"event": "checkpoint", "checkpoint": str(probe.path), "checkpoint_sha256": probe.sha256},
        )
        self.vocab_size = probe.config.vocab_size
        known = not probe.sources["seq_len"].startswith("unknown")
        self.seq_len = probe.config.seq_len if known else None
        if known:
            self.model = probe.model.to(self.device)
        self._owned = True

    def _ensure_model(self, seq_len: int) -> ACTModel:
        if self.model is None:
            assert self.checkpoint is not None
            opts = dict(self._load_options)
            opts["overrides"] = {**opts["overrides"], "seq_len": seq_len}  # type: ignore[dict-item]
            self.model = load_checkpoint(self.checkpoint, device=self.device or "cpu", **opts).model  # type: ignore[arg-type]
            self.seq_len = seq_len
        return self.model

    # ---- puzzles -> tokens ---------------------------------------------------------------------
    def task_for(self, puzzle: Any) -> PuzzleTask:
        """The given task, or the one task of this vocabulary that reads `puzzle` (and whose
        layout it fits); one-line error naming the candidates otherwise."""
        if self.task is not None:
            return self.task
        fits, tried, reasons = [], [], []
        for task in all_tasks():
            if task.vocab_size != self.vocab_size:
                continue
            tried.append(task.name)
            try:
                tokens = task.encode_puzzle(puzzle)
            except HRMEvalError as e:
                reasons.append(str(e))
                continue
            if (self.seq_len is None or len(tokens) == self.seq_len) and task.matches(
                self.vocab_size, len(tokens), tokens[None]
            ):
                fits.append(task)
            else:
                reasons.append(self._misfit(task, tokens))
        if not fits and len(tried) == 1:  # one task it could be: what is wrong with it as that task
            raise HRMEvalError(f"solve: not a puzzle this model can read: {reasons[0]}")
        if len(fits) != 1:
            which = "fits none" if not fits else f"fits several ({', '.join(t.name for t in fits)})"
            raise HRMEvalError(
                f"solve: the puzzle {which} of the tasks of this model's vocabulary "
                f"(vocab_size {self.vocab_size}: {', '.join(tried) or 'no task'}); give the task (--task NAME)"
            )
        self.task = fits[0]
        return self.task

    def _misfit(self, task: PuzzleTask, tokens: np.ndarray) -> str:
        """Why puzzle tokens that `task` reads still do not fit this model."""
        if self.seq_len is not None and len(tokens) != self.seq_len:
            return f"the {task.name} puzzle has {len(tokens)} cells but the model reads {self.seq_len}"
        return f"the puzzle does not have the layout of task {task.name} ({task.describe_layout()})"

    def encode(self, puzzle: Any) -> np.ndarray:
        """One puzzle in natural form -> its input tokens [seq_len], checked against the model and,
        first of all, against the task's rules: a puzzle whose givens break them is impossible,
        however confidently the model would answer it."""
        task = self.task_for(puzzle)
        tokens = task.encode_puzzle(puzzle)
        if self.seq_len is not None and len(tokens) != self.seq_len:
            raise HRMEvalError(f"solve: {self._misfit(task, tokens)}")
        conflict = task.givens_conflict(tokens)
        if conflict is not None:
            raise HRMEvalError(f"solve: the puzzle is impossible: {conflict}")
        return tokens

    # ---- solving -------------------------------------------------------------------------------
    def solve(self, puzzle: Any, *, return_steps: bool = False, name: str | None = None) -> Solution:
        """One puzzle in its natural form (text, or the task's JSON form)."""
        return self.solve_tokens(self.encode(puzzle)[None], return_steps=return_steps, names=[name])[0]

    def solve_all(self, puzzles: Sequence[Any], *, return_steps: bool = False) -> list[Solution]:
        """Several puzzles of the same task, in one engine run; solutions in the given order."""
        if not len(puzzles):
            return []
        return self.solve_tokens(np.stack([self.encode(p) for p in puzzles]), return_steps=return_steps)

    def solve_tokens(
        self,
        inputs: np.ndarray,
        *,
        return_steps: bool = False,
        names: Sequence[str | None] | None = None,
        expected: Sequence[Any] | None = None,
        puzzle_identifiers: np.ndarray | None = None,
    ) -> list[Solution]:
        """Puzzles already as input tokens [n, L] (a file's rows); `expected`: known answers in
        natural form (None where unknown), compared in `Solution.correct`."""
        task = self._task_of_tokens(inputs)
        model = self._ensure_model(inputs.shape[1])
        n = len(inputs)
        runner = self._runner(model, task, min(n, SLOTS), return_steps, inputs.shape[1])
        ids = torch.zeros(n, dtype=torch.long) if puzzle_identifiers is None else torch.as_tensor(puzzle_identifiers)
        start = time.perf_counter()
        done: FinishedRows = runner.run_all(torch.as_tensor(np.asarray(inputs), dtype=torch.long), ids.long())
        seconds = (time.perf_counter() - start) / n
        preds = done.preds.numpy()  # [n, L]
        q_by_step = torch.sigmoid(done.q_halt_by_step).numpy()  # [n, T], NaN after the halting step
        out = []
        for i in range(n):
            steps = int(done.steps[i])
            out.append(
                Solution(
                    task=task.name,
                    puzzle=task.decode(inputs[i]),
                    answer=task.decode_answer(preds[i]),
                    tokens=[int(t) for t in preds[i]],
                    verified=bool(task.verify(inputs[i], preds[i])) if task.checks_rules else None,
                    steps=steps,
                    max_steps=runner.budget if isinstance(runner, ScaledRunner) else runner.limit,
                    q_halt_probability=float(q_by_step[i, steps - 1]),
                    seconds=seconds,
                    name=names[i] if names is not None else None,
                    step_answers=[task.decode_answer(p) for p in done.preds_by_step[i, :steps].numpy()]
                    if return_steps and done.preds_by_step is not None
                    else None,
                    step_q_halt_probabilities=[float(q) for q in q_by_step[i, :steps]] if return_steps else None,
                    expected=expected[i] if expected is not None else None,
                    **_scaling_fields(done, i),
                )
            )
        log.debug("solved %d %s puzzles in %.3f s", n, task.name, seconds * n)
        return out

    def _runner(self, model: ACTModel, task: PuzzleTask, slots: int, trace: bool, seq_len: int) -> Any:
        """The ACT engine, or the engine with test-time scaling over it."""
        common = dict(slots=slots, device=self.device, halting=self.policy, trace_preds=trace, cast_weights=self._owned)
        if self.scaling.enabled:
            return ScaledRunner(model, task, self.scaling, seq_len=seq_len, **common)  # type: ignore[arg-type]
        return ACTEngine(model, **common)  # type: ignore[arg-type]

    def solve_file(self, path: str | Path, *, limit: int | None = None, return_steps: bool = False) -> list[Solution]:
        """The puzzles of a .csv (public layout; the answer and rating may be empty) or a .jsonl
        file (input_sequence tokens; target_sequence optional). A known answer is kept as
        `Solution.expected`."""
        path = Path(path)
        suffix = path.suffix.lower()
        ids = None
        if suffix == ".csv":
            inputs, names, expected = self._read_csv(path, limit)
        elif suffix == ".jsonl":
            inputs, names, expected, ids = self._read_jsonl(path, limit)
        else:
            raise HRMEvalError(f"--data {path}: expected a .csv or .jsonl file of puzzles, got '{suffix}'")
        return self.solve_tokens(
            inputs, return_steps=return_steps, names=names, expected=expected, puzzle_identifiers=ids
        )

    def _read_csv(self, path: Path, limit: int | None) -> tuple[np.ndarray, list[str], list[Any]]:
        guarded.expect_file(path, "puzzle file")  # a FIFO named x.csv is said so, never opened
        raw = read_puzzle_csv(str(path), lambda q, a: None, answers_optional=True)
        rows = list(zip(raw.lines, raw.questions, raw.answers))[:limit]
        inputs, expected = [], []
        for line, question, answer in rows:
            where = f"{path}, row {line}"
            try:
                inputs.append(self.encode(question))
                if answer:
                    self.task_for(question).check_row(question, answer)
            except (HRMEvalError, RowError) as e:
                raise HRMEvalError(f"{where}: {e}") from None
            expected.append(self.task.decode(self.task.encode(answer)) if answer and self.task else None)
        return np.stack(inputs), [f"{path.stem}:{line}" for line, _, _ in rows], expected

    def _read_jsonl(self, path: Path, limit: int | None) -> tuple[np.ndarray, list[str], list[Any], np.ndarray]:
        inputs, labels, ids, names = read_jsonl_puzzles(path, vocab_size=self.vocab_size, targets_optional=True)
        inputs, labels, ids, names = inputs[:limit], labels[:limit], ids[:limit], names[:limit]
        task = self._task_of_tokens(inputs)
        expected = [None if (y == IGNORE).any() else task.decode_answer(y) for y in labels]
        return inputs, names, expected, ids

    def _task_of_tokens(self, inputs: np.ndarray) -> PuzzleTask:
        """The task of token input (a file's rows) when none was given: detected from the layout."""
        if self.task is None:
            self.task = detect_task(self.vocab_size, inputs.shape[1], inputs[:64])
            if self.task is None:
                raise HRMEvalError(
                    f"solve: no single task has vocab_size {self.vocab_size} and seq_len {inputs.shape[1]}; "
                    "give the task (--task NAME)"
                )
        return self.task


def _scaling_fields(done: FinishedRows, i: int) -> dict[str, Any]:
    """Solution's scaling fields for row i (empty without scaling)."""
    if not isinstance(done, ScaledRows):
        return {}
    assert done.attempts is not None and done.act_steps_total is not None and done.solved_at_attempt is not None
    at = int(done.solved_at_attempt[i])
    return {
        "attempts": int(done.attempts[i]),
        "act_steps_total": int(done.act_steps_total[i]),
        "solved_at_attempt": at or None,
        "selected_by": done.selected_by[i],
    }


def solve(
    model_or_checkpoint: Any,
    puzzle: Any,
    task: str | None = None,
    halting: HaltingMode = ADAPTIVE,
    return_steps: bool = False,
    **options: Any,
) -> Solution:
    """Solve one puzzle given in its natural form: `solve(model, "356.2..24...")`.

    `model_or_checkpoint`: an ACTModel, a LoadedCheckpoint, or a checkpoint path or name.
    `halting`: adaptive (default), fixed or threshold; `return_steps`: also the answer after each
    ACT step. `options` go to `Solver` (threshold, min_steps, max_steps, device, dtype, scaling,
    budget, views, noise, seed). For many
    puzzles, make one `Solver` and call `solve_all` (the checkpoint is loaded once)."""
    solver = Solver(model_or_checkpoint, task, halting=halting, **options)
    return solver.solve(puzzle, return_steps=return_steps)
