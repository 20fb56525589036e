"""--mode solve: puzzles nobody has solved (no answers needed) -> the model's answers.

hrm-eval --mode solve --puzzle "356.2..24.366..3422.36514312.556.4.."
hrm-eval --mode solve --data puzzles.csv --task sudoku6 --show-steps
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_eval import resources
from hrm_eval.cli.base import Invocation, Mode, model_config
from hrm_eval.data.csv_source import read_puzzle_csv
from hrm_eval.evaluation.stats import wilson_interval
from hrm_eval.inference.config import SolveConfig
from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.io import atomic_write_text

log = logging.getLogger("hrm_eval")


def run_solve(inv: Invocation) -> int:
    # why: these import torch; the CLI imports every mode's module to build its parser
    from hrm_eval.inference.scaling import ScalingPolicy
    from hrm_eval.inference.solve import Solver

    cfg = inv.output_config(SolveConfig)
    if bool(cfg.puzzle) == bool(cfg.data_path):
        raise HRMEvalError("--mode solve: give --puzzle TEXT (repeatable) or --data FILE, one of the two")

    def solver(checkpoint: Any) -> Solver:
        return Solver(
            checkpoint,
            cfg.task,
            threshold=cfg.halt_threshold,
            overrides=cfg.arch_overrides,
            model_config=model_config(cfg.model_config_path),
            scaling=ScalingPolicy.from_settings(cfg),
            **cfg.model_dump(include={"halting", "min_steps", "max_steps", "device", "dtype"}),
        )

    if cfg.data_path:
        # one model per file: the bundled model of the file's first puzzle (or of --task)
        checkpoint = cfg.checkpoint or _bundled_for_file(cfg.data_path, cfg.task)
        solutions = solver(checkpoint).solve_file(cfg.data_path, limit=cfg.limit, return_steps=cfg.show_steps)
    elif cfg.checkpoint:
        solutions = solver(cfg.checkpoint).solve_all(cfg.puzzle, return_steps=cfg.show_steps)
    else:
        solutions = _solve_routed(cfg.puzzle, cfg.task, solver, cfg.show_steps)
    valid = [s.verified for s in solutions if s.verified is not None]
    log.info(
        "solved %d puzzles, %d valid by the rules",
        len(solutions),
        sum(valid),
        extra={"event": "metrics", "metrics": {"puzzles": len(solutions), "valid_by_rules": sum(valid)}},
    )
    for i, s in enumerate(solutions):
        print(("\n" if i else "") + format_solution(s, i + 1, cfg.halting))
    if cfg.output_dir:
        path = Path(cfg.output_dir) / "solutions.jsonl"
        atomic_write_text(path, "".join(json.dumps(s.to_dict()) + "\n" for s in solutions))
        print(f"\nsolutions: {path}")
    if len(solutions) > 1 and valid:
        lo, hi = wilson_interval(sum(valid), len(valid))
        print(f"\nvalid by the rules: {sum(valid)} of {len(valid)} (95% interval of the rate {lo:.3f}-{hi:.3f})")
    return 0


def _solve_routed(puzzles: list[str], task: str | None, solver: Callable[[Any], Any], steps: bool) -> list[Any]:
    """No --checkpoint: each puzzle goes to the bundled model of its task (its size: 36 cells to
    the 6x6 model, 81 to the 9x9 one), each model loaded once; solutions in the given order."""
    groups: dict[Path, list[int]] = {}
    for i, puzzle in enumerate(puzzles):
        try:
            model = resources.bundled_model_for(puzzle, task)
        except HRMEvalError as e:
            raise HRMEvalError(f"solve: {'' if len(puzzles) == 1 else f'puzzle {i + 1}: '}{e}") from None
        groups.setdefault(model.path, []).append(i)
    solutions: list[Any] = [None] * len(puzzles)
    for path, rows in groups.items():
        for i, s in zip(rows, solver(path).solve_all([puzzles[i] for i in rows], return_steps=steps)):
            solutions[i] = s
    return solutions


def _bundled_for_file(path: str, task: str | None) -> Path:
    """No --checkpoint with --data: the bundled model of --task, else of the first puzzle of a
    .csv file; a .jsonl file (token ids) keeps the default model."""
    if task is not None:
        return resources.bundled_model_for(task=task).path
    if Path(path).suffix.lower() != ".csv":
        return resources.bundled_run()
    guarded.expect_file(Path(path), "puzzle file")  # a FIFO named x.csv is said so, never opened
    first = read_puzzle_csv(path, lambda q, a: None, answers_optional=True).questions[0]
    try:
        return resources.bundled_model_for(first).path
    except HRMEvalError as e:
        raise HRMEvalError(f"solve: {path}, first puzzle: {e}") from None


def format_grid(answer: Any) -> str:
    """An answer in natural form as rows: a square text (Sudoku, maze) cut into its rows, an ARC
    grid's rows of colours."""
    if isinstance(answer, str):
        side = math.isqrt(len(answer))
        if side * side == len(answer) and side > 1:
            return "\n".join(answer[r * side : (r + 1) * side] for r in range(side))
        return answer
    if isinstance(answer, list):
        return "\n".join("".join(str(c) for c in row) for row in answer) if answer else "(empty grid)"
    return str(answer)


def format_solution(s: Any, number: int, halting: str) -> str:
    lines: list[str] = [f"puzzle {s.name or number} ({s.task})", _indent(format_grid(s.answer))]
    rules = "no rules to check (ARC)" if s.verified is None else ("yes" if s.verified else "NO")
    lines.append(f"valid by the rules: {rules}")
    if s.correct is not None:
        lines.append(f"matches the known answer: {'yes' if s.correct else 'no'}")
    if s.attempts is None:
        lines.append(
            f"steps: {s.steps} of {s.max_steps} ({halting} halting); "
            f"halting confidence sigmoid(q_halt) {s.q_halt_probability:.3f}"
        )
    else:
        found = f"found by attempt {s.solved_at_attempt}" if s.solved_at_attempt else f"chosen by {s.selected_by}"
        lines.append(
            f"steps: {s.act_steps_total} of a budget of {s.max_steps} over {s.attempts} attempt(s), {found} "
            f"({s.steps} steps, {halting} halting); halting confidence sigmoid(q_halt) {s.q_halt_probability:.3f}"
        )
    if s.step_answers is not None:
        for t, (answer, q) in enumerate(zip(s.step_answers, s.step_q_halt_probabilities), 1):
            lines.append(f"after step {t} (confidence {q:.3f}):\n{_indent(format_grid(answer))}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))


SOLVE = Mode(
    "solve",
    "Solve puzzles without known answers: the answer grid, rule check, steps, halting confidence.",
    run_solve,
    SolveConfig,
)
