"""ThinkEnv (hrm_eval/Think-v0): the ACT loop of a loaded checkpoint as an environment.

    env = gymnasium.make("hrm_eval/Think-v0", data="checkpoints/sudoku6-hard-hrm/heldout")
    obs, info = env.reset(seed=0)     # the model has run its first ACT step on a new puzzle
    obs, reward, terminated, truncated, info = env.step(0)   # 0: think one more step
    obs, reward, terminated, truncated, info = env.step(1)   # 1: halt with the current answer

Observation (float32 [5]): the model's q_halt and q_continue logits after the last step, the
steps run, how many cells the last step changed, and whether the answer is valid by the rules
(1/0). `info["answer"]` holds the current answer's tokens [L].

Reward: 0 while thinking; at the halt, 1 if the answer is right (`reward_on="exact"`: equal to
the stored answer, where one is known; "verified": valid by the task's rules) minus `step_cost`
per step run. The first step runs in `reset` (ACT runs at least one); at the step limit
(`max_steps`, default the model's halt_max_steps) every action halts, as the engine does.

`gymnasium.make_vec("hrm_eval/Think-v0", num_envs=N)` is ThinkVectorEnv: one model call per
vector step for every sub-environment that thinks on (and the first step of those that start a
new puzzle), instead of one call per sub-environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from hrm_eval.env.games import game_for
from hrm_eval.env.puzzles import Puzzle, PuzzleSource
from hrm_eval.env.thinking import OBS_FIELDS, ThinkState, load_model
from hrm_eval.utils.errors import HRMEvalError

CONTINUE, HALT = 0, 1
_F32 = np.finfo(np.float32)
# Q values are logits (any real number): the box is every finite float32, so none is out of it
OBSERVATION = spaces.Box(low=_F32.min, high=_F32.max, shape=(len(OBS_FIELDS),), dtype=np.float32)


class _ThinkSetup:
    """What both forms read from their arguments: the model, the task, the puzzles, the rules.
    Both constructors hand their keywords on to `setup`, the one place they are declared."""

    def setup(
        self,
        checkpoint: Any = None,
        data: str | Path | None = None,
        *,
        split: str = "test",
        task: str | None = None,
        difficulty: tuple[int, int] | None = None,
        step_cost: float = 0.0,
        reward_on: str = "exact",
        max_steps: int | None = None,
        device: str = "cpu",
        dtype: str | None = None,
    ) -> None:
        if reward_on not in ("exact", "verified"):
            raise HRMEvalError(f"reward_on must be exact or verified, got {reward_on!r}")
        self.model, self.task = load_model(checkpoint, device=device, dtype=dtype, task=task)
        self.source = PuzzleSource(self.task, data, split=split, difficulty=difficulty)
        if self.source.seq_len != self.model.config.seq_len:
            raise HRMEvalError(
                f"the puzzles have {self.source.seq_len} cells but the model reads {self.model.config.seq_len}"
            )
        self.limit = max_steps if max_steps is not None else self.model.config.halt_max_steps
        if self.limit < 1:
            raise HRMEvalError(f"max_steps must be at least 1, got {max_steps}")
        self.step_cost, self.verified = float(step_cost), reward_on == "verified"

    def _rewards(self, state: ThinkState, rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(reward [n] float, correct [n] bool) for rows that halt now."""
        correct = state.correct(rows, self.verified).cpu().numpy()
        steps = state.steps[rows].cpu().numpy()
        return correct.astype(np.float64) - self.step_cost * steps, correct


class ThinkEnv(_ThinkSetup, gym.Env):
    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        checkpoint: Any = None,
        data: str | Path | None = None,
        *,
        render_mode: str | None = None,
        **options: Any,
    ):
        """`options`: split, task, difficulty, step_cost, reward_on, max_steps, device, dtype
        (`_ThinkSetup.setup`)."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise HRMEvalError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.setup(checkpoint, data, **options)
        self.state = ThinkState(self.model, self.task, 1)
        self.row = torch.zeros(1, dtype=torch.long, device=self.state.device)
        self.observation_space = OBSERVATION
        self.action_space = spaces.Discrete(2)
        self.render_mode = render_mode
        self.puzzle: Puzzle | None = None
        self.done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        pinned = (options or {}).get("puzzle")
        self.puzzle = self.source.pinned(pinned) if pinned is not None else self.source.draw(self.np_random)
        self.state.begin(self.row, self.puzzle.inputs[None], [self.puzzle.label])
        self.state.advance(self.row)
        self.done = False
        return self.state.observe(self.row)[0], self._info()

    def step(self, action: Any):
        if self.done:
            raise HRMEvalError("the episode has ended: call reset()")
        action = int(action)
        if action not in (CONTINUE, HALT):
            raise HRMEvalError(f"action must be 0 (continue) or 1 (halt), got {action}")
        at_limit = int(self.state.steps[0]) >= self.limit
        if action == HALT or at_limit:  # at the limit the answer is taken, as the engine takes it
            reward, correct = self._rewards(self.state, self.row)
            self.done = True
            info = self._info(correct=bool(correct[0]))
            return self.state.observe(self.row)[0], float(reward[0]), True, False, info
        self.state.advance(self.row)
        return self.state.observe(self.row)[0], 0.0, False, False, self._info()

    def _info(self, correct: bool | None = None) -> dict:
        assert self.puzzle is not None
        info = {
            "answer": self.state.answer[0].cpu().numpy().copy(),
            "steps": int(self.state.steps[0]),
            "puzzle": self.puzzle.name,
        }
        if correct is not None:
            info["correct"] = correct
        return info

    def render(self):
        if self.render_mode != "ansi" or self.puzzle is None:
            return None

        game = game_for(self.task, self.source.seq_len)
        game.start(self.puzzle.inputs)
        q_halt, q_continue, steps, changed, valid = self.state.observe(self.row)[0]
        head = f"step {int(steps)}: q_halt {q_halt:.2f}, q_continue {q_continue:.2f}, {int(changed)} cells changed"
        board = game.ansi(self.state.answer[0].cpu().numpy())
        return f"{head}, {'valid' if valid else 'not valid'} by the rules\n{board}\n"


def _autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """NEXT_STEP or DISABLED, given as the enum or by name ("next-step", "NextStep", "disabled")."""
    key = (mode.value if isinstance(mode, AutoresetMode) else str(mode)).lower().replace("-", "").replace("_", "")
    found = {m.value.lower(): m for m in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED)}.get(key)
    if found is None:
        raise HRMEvalError(f"autoreset_mode must be next-step or disabled, got {mode!r}")
    return found


class ThinkVectorEnv(_ThinkSetup, VectorEnv):
    """`num_envs` ThinkEnvs stepped together; sub-environment i seeded with seed + i (as the
    sync vector env seeds its copies). `reset(options={"puzzles": [...]})` pins one puzzle per
    sub-environment; `options={"reset_mask": m}` resets only the sub-environments where m is True.

    `autoreset_mode` NEXT_STEP (default): a sub-environment that ended starts a new puzzle on the
    next step (that step's action is ignored, its reward is 0). DISABLED: it stays ended (not
    computed, its action ignored, terminated again with reward 0) until reset with a
    reset_mask: a set of puzzles is then played once each, at the cost of the engine."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # per instance: the mode chosen

    def __init__(
        self,
        num_envs: int = 1,
        checkpoint: Any = None,
        data: str | Path | None = None,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **options: Any,
    ):
        """`options`: ThinkEnv's (`_ThinkSetup.setup`)."""
        mode = _autoreset_mode(autoreset_mode)
        self.metadata = {"autoreset_mode": mode, "render_modes": []}
        if num_envs < 1:
            raise HRMEvalError(f"num_envs must be at least 1, got {num_envs}")
        self.setup(checkpoint, data, **options)
        self.num_envs = num_envs
        self.state = ThinkState(self.model, self.task, num_envs)
        self.single_observation_space = OBSERVATION
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(OBSERVATION, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_envs)]
        self.names: list[str] = [""] * num_envs
        self.ended = np.zeros(num_envs, dtype=bool)  # ended on the last step: starts anew on this one
        self.all_rows = torch.arange(num_envs, device=self.state.device)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=bool)), dtype=bool)
        if mask.shape != (self.num_envs,) or not mask.any():
            raise HRMEvalError(f"reset: reset_mask must be {self.num_envs} booleans, at least one True")
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise HRMEvalError(f"reset: {len(seeds)} seeds for {self.num_envs} sub-environments")
            self.rngs = [np.random.default_rng(s) if m else r for s, m, r in zip(seeds, mask, self.rngs)]
            self._np_random = self.rngs[0]
        pinned = options.get("puzzles")
        if pinned is not None and len(pinned) != self.num_envs:
            raise HRMEvalError(f"reset: {len(pinned)} pinned puzzles for {self.num_envs} sub-environments")
        rows = np.flatnonzero(mask)
        puzzles = [
            self.source.pinned(pinned[i]) if pinned is not None else self.source.draw(self.rngs[i]) for i in rows
        ]
        picked = torch.as_tensor(rows, device=self.state.device)
        self._begin(picked, puzzles)
        self.state.advance(picked)
        self.ended[mask] = False
        return self.state.observe(self.all_rows), self._infos()

    def _begin(self, rows: torch.Tensor, puzzles: list[Puzzle]) -> None:
        self.state.begin(rows, np.stack([p.inputs for p in puzzles]), [p.label for p in puzzles])
        for row, p in zip(rows.tolist(), puzzles):
            self.names[row] = p.name

    def step(self, actions: Any):
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise HRMEvalError(f"step: {actions.size} actions for {self.num_envs} sub-environments")
        if not np.isin(actions, (CONTINUE, HALT)).all():
            raise HRMEvalError("step: actions must be 0 (continue) or 1 (halt)")
        next_step = self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        restart = self.ended if next_step else np.zeros_like(self.ended)  # NEXT_STEP: they start anew
        idle = np.zeros_like(self.ended) if next_step else self.ended  # DISABLED: they stay ended
        at_limit = self.state.steps.cpu().numpy() >= self.limit
        halt = ~self.ended & ((actions == HALT) | at_limit)
        think = ~self.ended & ~halt
        rewards = np.zeros(self.num_envs)
        correct = np.zeros(self.num_envs, dtype=bool)
        halt_rows = torch.as_tensor(np.flatnonzero(halt), device=self.state.device)
        if halt.any():  # rewarded on the answer they hold, before any row is stepped
            rewards[halt], correct[halt] = self._rewards(self.state, halt_rows)
        new_rows = np.flatnonzero(restart)
        if len(new_rows):
            self._begin(
                torch.as_tensor(new_rows, device=self.state.device), [self.source.draw(self.rngs[i]) for i in new_rows]
            )
        # one model call: the rows thinking on and the first step of the rows starting anew
        self.state.advance(torch.as_tensor(np.flatnonzero(think | restart), device=self.state.device))
        self.ended = halt | idle
        infos = self._infos()
        infos["correct"], infos["_correct"] = correct, halt.copy()
        terminated = self.ended.copy()
        return self.state.observe(self.all_rows), rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos

    def _infos(self) -> dict:
        every = np.ones(self.num_envs, dtype=bool)
        return {
            "answer": self.state.answer.cpu().numpy().copy(),  # a copy: the state changes in place
            "_answer": every,
            "steps": self.state.steps.cpu().numpy().copy(),
            "_steps": every.copy(),
            "puzzle": np.array(self.names, dtype=object),
            "_puzzle": every.copy(),
        }
