"""The served model: the checkpoint, its task, and the conversion between what a request says
(a puzzle in the task's natural form, a grid, or token ids) and the model's tokens.

All task knowledge comes from the task registry (`hrm_eval.data.tasks`): parse_puzzle /
encode_puzzle, decode_answer, verify and the layout. Nothing here knows what a Sudoku is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_eval import resources
from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks import TASKS, PuzzleTask, detect_task, get_task
from hrm_eval.inference.engine import HaltingPolicy
from hrm_eval.inference.runtime import DtypeChoice, choose_dtype
from hrm_eval.models.checkpoint import LoadedCheckpoint, load_checkpoint, resolve_checkpoint_path
from hrm_eval.models.hub import hub_origin
from hrm_eval.serve.config import ServeConfig
from hrm_eval.serve.guard import MAX_JSON_DEPTH, json_depth
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger("hrm_eval")


class RequestError(Exception):
    """A bad request: HTTP `status` and one line naming the field and the reason."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Puzzle:
    """One request's puzzle, ready for the engine."""

    tokens: np.ndarray  # [L] int32
    identifier: int
    task: PuzzleTask | None
    as_tokens: bool  # the request gave token ids: answer with token ids too


@dataclass
class EngineAnswer:
    """What the engine computed for one puzzle."""

    preds: np.ndarray  # [L] the answer tokens at the step the puzzle halted
    steps: int
    q_halt_logit: float
    by_step: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (answer [L], q_halt logit) per step
    # test-time scaling (None: a plain run): attempts, act_steps_total, solved_at_attempt, selected_by, budget
    scaling: dict[str, Any] | None = None
    step_attempts: list[int] | None = None  # scaled: the attempt each of by_step belongs to


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _run_data(checkpoint: Path) -> Path | None:
    """`<run dir>/data` beside a step_<N> file (the bundled layout), when there is one."""
    run_dir = checkpoint.parent if checkpoint.is_file() else checkpoint
    data = run_dir / "data"
    return data if (data / "test" / "dataset.json").is_file() else None


class ServedModel:
    """A loaded checkpoint plus what the server needs around it."""

    def __init__(self, loaded: LoadedCheckpoint, dtype: DtypeChoice, halting: HaltingPolicy, examples: Any):
        self.loaded = loaded
        self.config = loaded.config
        self.dtype = dtype
        self.halting = halting
        self.examples: PuzzleDataset | None = examples
        self.task = detect_task(self.config.vocab_size, self.config.seq_len)
        run = loaded.path.parent.name if loaded.path.parent.name != "." else ""
        self.name = f"{run}/{loaded.path.name}" if run else loaded.path.name
        origin = hub_origin(loaded.path)
        if origin is not None:  # hf://: the repo, not the cache's commit folder
            self.name = f"{origin['repo_id']}/{origin['path_in_repo']}"

    @classmethod
    def load(
        cls,
        cfg: ServeConfig,
        device: torch.device,
        model_config: dict[str, Any] | None = None,
        checkpoint: str | Path | None = None,
        first: bool = True,
    ) -> ServedModel:
        """`model_config`: architecture fields for a checkpoint without all_config.yaml;
        `checkpoint`: which model (default: cfg's, else the bundled one). --data (the page's random
        puzzles) is the `first` model's; every other one's are its run's data/."""
        given = checkpoint or cfg.checkpoint
        path = resolve_checkpoint_path(resources.find(given) if given else resources.bundled_run())
        data_path = cfg.data_path if first else None
        data = resources.find(data_path) if data_path else _run_data(path)  # path: also hf://, fetched
        examples = PuzzleDataset(data, split="test") if data is not None else None

        def load(dtype: str | None) -> LoadedCheckpoint:
            return load_checkpoint(
                path,
                dataset=examples.metadata if examples is not None else None,
                overrides=cfg.arch_overrides,
                model_config=model_config,
                device=device,
                dtype=dtype,
            )

        loaded = load(None if cfg.dtype == "auto" else cfg.dtype)
        choice = choose_dtype(cfg.dtype, loaded.config.forward_dtype, device)
        if choice.dtype != loaded.config.forward_dtype:
            loaded = load(choice.dtype)
        return cls(loaded, choice, HaltingPolicy(cfg.halting), examples)

    # ---- describing ------------------------------------------------------------------------
    def tasks(self) -> list[PuzzleTask]:
        """Every registered task whose layout fits the model (the one detected first)."""
        get_task("sudoku")  # loads the built-in tasks
        fit = [t for t in TASKS.values() if t.matches(self.config.vocab_size, self.config.seq_len)]
        return sorted(fit, key=lambda t: t is not self.task)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "name": self.name,
            "family": c.family,
            "variant": c.variant,
            "checkpoint": str(self.loaded.path),
            "step": self.loaded.step,
            "sha256": self.loaded.sha256,
            "dtype": self.dtype.dtype,
            "dtype_reason": self.dtype.reason,
            "halting": self.halting.describe(c.halt_max_steps),
            "layout": {
                "vocab_size": c.vocab_size,
                "seq_len": c.seq_len,
                "puzzle_identifiers": c.num_puzzle_identifiers,
            },
            "task": self.task.name if self.task else None,
            "tasks": [task_layout(t) for t in self.tasks()],
            "random_puzzles": self.examples is not None,
        }

    @property
    def label(self) -> str:
        """The model's task for messages: `sudoku6`, or its layout when no task fits it."""
        if self.task is not None:
            return self.task.name
        return f"vocab_size {self.config.vocab_size}, seq_len {self.config.seq_len}"

    def reads(self, item: Any) -> bool:
        """Whether a request item (no `task` given) is a puzzle of this model: token ids of its
        length, or a puzzle / grid its task reads (a Sudoku of its size)."""
        if item.tokens is not None:
            return len(item.tokens) == self.config.seq_len
        if self.task is None:
            return False
        try:
            self.task.encode_puzzle(item.grid if item.grid is not None else item.puzzle)
        except HRMEvalError:
            return False
        return True

    # ---- request -> tokens -------------------------------------------------------------------
    def request_task(self, name: str | None, where: str) -> PuzzleTask | None:
        """The task a request item names (None: the model's own), or RequestError(422)."""
        if name is None:
            return self.task
        try:
            task = get_task(name)
        except HRMEvalError as e:
            raise RequestError(422, f"{where}task: {e}") from None
        if not task.matches(self.config.vocab_size, self.config.seq_len):
            raise RequestError(
                422,
                f"{where}task: {name} ({task.describe_layout()}) does not fit this model "
                f"(vocab_size {self.config.vocab_size}, seq_len {self.config.seq_len})",
            )
        return task

    def puzzle(self, item: Any, where: str = "") -> Puzzle:
        """A validated request item (schemas.PuzzleInput) -> a Puzzle; RequestError(422) naming
        the field (`where` prefixes it inside a batch) and the reason."""
        task = self.request_task(item.task, where)
        if item.puzzle_identifier >= self.config.num_puzzle_identifiers:
            raise RequestError(
                422,
                f"{where}puzzle_identifier: {item.puzzle_identifier} is not below the model's "
                f"{self.config.num_puzzle_identifiers} identifiers",
            )
        if item.tokens is not None:
            return Puzzle(self._tokens(item.tokens, where), item.puzzle_identifier, task, True)
        name, value = ("grid", item.grid) if item.grid is not None else ("puzzle", item.puzzle)
        if isinstance(value, str) and value.lstrip().startswith("[") and json_depth(value) > MAX_JSON_DEPTH:
            # JSON text in a string: measured before the task's parser recurses into it
            raise RequestError(422, f"{where}{name}: not valid JSON (nested deeper than {MAX_JSON_DEPTH} levels)")
        if task is None:
            raise RequestError(
                422,
                f"{where}{name}: this model's layout (vocab_size {self.config.vocab_size}, seq_len "
                f"{self.config.seq_len}) fits no known task; send token ids as `tokens`",
            )
        try:
            tokens = task.encode_puzzle(value)
        except HRMEvalError as e:
            raise RequestError(422, f"{where}{name}: {e}") from None
        return Puzzle(tokens.astype(np.int32), item.puzzle_identifier, task, False)

    def _tokens(self, tokens: list[int], where: str) -> np.ndarray:
        c = self.config
        if len(tokens) != c.seq_len:
            raise RequestError(422, f"{where}tokens: expected {c.seq_len} token ids, got {len(tokens)}")
        # checked as Python ints first: JSON numbers may be far outside any numpy integer type
        bad = next((i for i, t in enumerate(tokens) if not 0 <= t < c.vocab_size), None)
        if bad is not None:
            raise RequestError(422, f"{where}tokens[{bad}]: {tokens[bad]} is not a token id below {c.vocab_size}")
        return np.asarray(tokens, dtype=np.int32)

    # ---- tokens -> answer ----------------------------------------------------------------------
    def natural(self, task: PuzzleTask | None, tokens: np.ndarray) -> dict[str, Any]:
        """The answer in the task's natural form: `answer` for text, `grid` for rows of numbers."""
        if task is None:
            return {}
        value = task.decode_answer(tokens)
        return {"answer": value} if isinstance(value, str) else {"grid": value}

    def answer(self, puzzle: Puzzle, solution: EngineAnswer, with_steps: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"task": puzzle.task.name if puzzle.task else None}
        out.update(self.natural(puzzle.task, solution.preds))
        if puzzle.as_tokens:
            out["tokens"] = solution.preds.tolist()
        out["verified"] = bool(puzzle.task.verify(puzzle.tokens, solution.preds)) if puzzle.task else None
        out["steps"] = solution.steps
        out["q_halt_probability"] = round(sigmoid(solution.q_halt_logit), 6)
        if solution.scaling is not None:  # what thinking harder cost (a plain answer has none of these)
            out.update(solution.scaling)
        if with_steps:
            attempts: list[int | None] = [None] * len(solution.by_step)
            if solution.step_attempts:
                attempts = list(solution.step_attempts)
            out["by_step"] = [
                self.step_event(puzzle, i + 1, p, q, a) for i, ((p, q), a) in enumerate(zip(solution.by_step, attempts))
            ]
        out["model"] = self.name
        return out

    def step_event(
        self, puzzle: Puzzle, step: int, preds: np.ndarray, q_halt_logit: float, attempt: int | None = None
    ) -> dict[str, Any]:
        """One ACT step's answer; `step` counts over all attempts of a scaled puzzle, `attempt`
        (scaled only) says whose step it is."""
        out: dict[str, Any] = {"step": step}
        if attempt is not None:
            out["attempt"] = attempt
        out.update(self.natural(puzzle.task, preds))
        if puzzle.as_tokens:
            out["tokens"] = preds.tolist()
        out["q_halt_probability"] = round(sigmoid(q_halt_logit), 6)
        return out

    # ---- the page's random puzzles ---------------------------------------------------------------
    def random_example(self, rng: np.random.Generator) -> dict[str, Any]:
        if self.examples is None:
            raise RequestError(404, "random puzzles: this server has no test set (start it with --data DIR)")
        arrays = next(iter(self.examples.sets.values()))
        i = int(rng.integers(len(arrays["inputs"])))
        inputs, labels = np.asarray(arrays["inputs"][i]), np.asarray(arrays["labels"][i])
        task = self.task
        out: dict[str, Any] = {"index": i, "task": task.name if task else None, "tokens": inputs.tolist()}
        if task is not None:
            out["puzzle"] = task.decode_answer(inputs)
            out["solution"] = task.decode_answer(labels)
        return out


def task_layout(task: PuzzleTask) -> dict[str, Any]:
    """What the page needs to draw a task's board: its size and, for boards with boxes, the boxes."""
    out: dict[str, Any] = {"name": task.name, "vocab_size": task.vocab_size, "seq_len": task.seq_len}
    for attr in ("n", "box_rows", "box_cols"):
        if hasattr(task, attr):
            out[attr] = getattr(task, attr)
    return out
