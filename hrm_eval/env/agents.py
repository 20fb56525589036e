"""Agents that play the environments: `agent.reset()` at an episode's start, then
`agent.act(obs, info)` for each move.

ModelAgent   PuzzleEnv: solve the board once with a checkpoint, then place the answer's cells
             in order of the model's confidence; when the next placement would break a rule
             (or the whole answer does), solve again from the board as it is now (a
             better-filled puzzle).
RandomAgent  PuzzleEnv: a uniformly random legal move (the action mask).
QHeadAgent   ThinkEnv: halt when the model's own rule says so (HRM: q_halt > q_continue;
             TRM without the continue head: q_halt > 0), as `--halting adaptive` does.
ThresholdAgent  ThinkEnv: halt when sigmoid(q_halt) >= a threshold.

QHeadAgent and ThresholdAgent read only the observation, so they also act on a vector env's
[N, 5] observations at once (an array of N actions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hrm_eval.env.think import CONTINUE, HALT
from hrm_eval.env.thinking import load_model
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy
from hrm_eval.inference.halting import ADAPTIVE, HaltingMode
from hrm_eval.models.act import ACTModel


class RandomAgent:
    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, obs: Any, info: dict) -> int:
        legal = np.flatnonzero(info["action_mask"])
        return int(self.rng.choice(legal)) if len(legal) else 0


class ModelAgent:
    """Plays a PuzzleEnv (`env`, or its unwrapped self) with a checkpoint (default: the bundled
    model); `halting` decides each solve's steps (adaptive: the model's own rule).

    When the answer is valid by the rules, its cells are placed most confident first (the
    margin between the best and second-best logit). When it is not, or when the next placement
    would break a rule, only the most confident cell is placed before the model solves the
    board again: every placement makes the puzzle it reads easier. `solves` counts model runs."""

    def __init__(self, env: Any, checkpoint: Any = None, *, halting: HaltingMode = ADAPTIVE, device: str = "cpu"):
        self.game = env.unwrapped.game
        model, _ = load_model(checkpoint, device=device, task=self.game.task.name)
        self.engine = ACTEngine(model, slots=1, halting=HaltingPolicy(halting))
        self.plan: list[int] = []  # moves of the last answer, most confident first
        self.scores = np.zeros(0)  # [num_actions] the last answer's probability of each move
        self.fresh = False  # the plan comes from the board as it is now
        self.trusted = False  # the last answer is valid by the rules: no need to solve again
        self.solves = 0
        self._last: tuple | None = None  # (model input, logits [L, V]): the same input is not run twice

    def reset(self) -> None:
        self.plan, self.fresh, self.trusted = [], False, False
        self.scores = np.zeros(0)

    def solve(self, board: np.ndarray) -> None:
        x = np.asarray(self.game.model_input(board))
        if self._last is None or not np.array_equal(self._last[0], x):
            done = self.engine.run_all(torch.as_tensor(x, dtype=torch.long)[None], torch.zeros(1, dtype=torch.long))
            self._last = (x.copy(), done.logits[0].double().numpy())  # [L, V]
            self.solves += 1
        logits = self._last[1]
        top2 = np.sort(logits, -1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]  # [L] how sure the model is of each cell's token
        preds = logits.argmax(-1)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        self.scores = self.game.action_scores(probs / probs.sum(-1, keepdims=True))
        open_cells = np.flatnonzero(self.game.open_cells(board))
        moves = [(margin[c], self.game.action_of(int(c), int(preds[c]))) for c in open_cells]
        self.plan = [a for _, a in sorted((m for m in moves if m[1] is not None), key=lambda m: -m[0])]
        answer = np.where(self.game.open_cells(board), preds, board)
        self.trusted = self.game.solved(answer)
        self.fresh = True

    def act(self, obs: Any, info: dict) -> int:
        board, mask = np.asarray(obs), info["action_mask"]
        if not self.plan or not (self.trusted or self.fresh):
            self.solve(board)
        while True:
            open_cells = self.game.open_cells(board)
            self.plan = [a for a in self.plan if open_cells[self.game.cell_token(a)[0]]]
            if self.plan and mask[self.plan[0]]:
                self.fresh = False
                return self.plan.pop(0)
            if self.fresh:
                break
            self.solve(board)  # the next placement would break a rule: solve the board as it is now
        legal = np.flatnonzero(mask)  # the fresh answer breaks a rule there too: the likeliest legal move
        self.fresh = False
        return int(legal[np.argmax(self.scores[legal])]) if len(legal) else 0


class QHeadAgent:
    """Halts when the model's own Q head says so (`ACTModel.wants_to_halt`)."""

    def __init__(self, model: Any):
        self.model: ACTModel = model.unwrapped.model if hasattr(model, "unwrapped") else model

    def reset(self) -> None:
        pass

    def act(self, obs: Any, info: dict | None = None) -> Any:
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        halt = self.model.wants_to_halt(o[..., 0], o[..., 1])
        return np.where(halt.numpy(), HALT, CONTINUE) if o.ndim > 1 else int(HALT if bool(halt) else CONTINUE)


class ThresholdAgent:
    """Halts when sigmoid(q_halt) >= `threshold` (as `--halting threshold`)."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def reset(self) -> None:
        pass

    def act(self, obs: Any, info: dict | None = None) -> Any:
        p = 1.0 / (1.0 + np.exp(-np.asarray(obs, dtype=np.float64)[..., 0]))
        halt = p >= self.threshold
        return np.where(halt, HALT, CONTINUE) if np.ndim(halt) else int(HALT if halt else CONTINUE)
