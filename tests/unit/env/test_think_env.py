"""ThinkEnv: the ACT loop as an environment, checked against the engine on the bundled model's
held-out puzzles (the same answers, steps and halting decisions) and against rewards worked out
from the engine's own trace."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import hrm_eval.env  # noqa: F401 - registers the ids
from hrm_eval.env import ThinkEnv, ThinkVectorEnv
from hrm_eval.env.agents import QHeadAgent, ThresholdAgent
from hrm_eval.env.play import play_set
from hrm_eval.inference.engine import ACTEngine, HaltingPolicy
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import ROOT

HELDOUT = ROOT / "checkpoints" / "sudoku6-hard-hrm" / "heldout"
PUZZLES = 200  # held-out puzzles for the equality with the engine: one batched run of each


@pytest.fixture(scope="module")
def trace():
    """The engine's fixed-halting trace of the first 8 held-out puzzles: answers and exactness
    after every step (the reference the rewards below are computed from)."""
    env = ThinkEnv(data=HELDOUT)
    x, y = env.source.inputs[:8], env.source.labels[:8]
    engine = ACTEngine(env.model, slots=8, halting=HaltingPolicy("fixed"), trace_preds=True)
    return engine.run_all(torch.as_tensor(x), torch.zeros(8, dtype=torch.long), torch.as_tensor(y))


def test_halting_at_step_k_pays_the_exactness_of_the_engines_answer_at_k_minus_the_steps(trace):
    env = ThinkEnv(data=HELDOUT, step_cost=0.1)
    exact = trace.exact_by_step.numpy()  # [8, 8]
    puzzle = int(np.flatnonzero(~exact[:, 0] & exact[:, -1])[0])  # wrong after one step, right after eight
    first = int(np.argmax(exact[puzzle]))  # the first step whose answer is right
    for halt_at in (1, first + 1, 8):
        obs, info = env.reset(options={"puzzle": puzzle})
        for step in range(1, halt_at):
            assert np.array_equal(info["answer"], trace.preds_by_step[puzzle, step - 1].numpy())
            obs, reward, terminated, truncated, info = env.step(0)
            assert (reward, terminated, truncated) == (0.0, False, False) and obs[2] == step + 1
        obs, reward, terminated, truncated, info = env.step(1)
        right = bool(exact[puzzle, halt_at - 1])
        assert terminated and not truncated and info["correct"] == right and info["steps"] == halt_at
        assert reward == pytest.approx(float(right) - 0.1 * halt_at)
        assert obs[4] == float(right)  # the answer of a uniquely solvable board is valid iff right


def test_the_observation_is_the_models_q_values_and_the_cells_the_step_changed(trace):
    env = ThinkEnv(data=HELDOUT)
    obs, info = env.reset(options={"puzzle": 0})
    preds = trace.preds_by_step[0].numpy()
    assert obs[0] == pytest.approx(float(trace.q_halt_by_step[0, 0]), abs=1e-4)
    assert obs[1] == pytest.approx(float(trace.q_continue_by_step[0, 0]), abs=1e-4)
    assert obs[3] == (preds[0] != env.source.inputs[0]).sum()  # step 1: cells written over the puzzle
    obs, *_ = env.step(0)
    assert obs[3] == (preds[1] != preds[0]).sum()


def test_same_seed_same_episode():
    def episode(seed):
        env = gym.make("hrm_eval/Think-v0", data=HELDOUT)
        obs, info = env.reset(seed=seed)
        out = [info["puzzle"], obs]
        for action in (0, 0, 1):
            obs, reward, *_ = env.step(action)
            out += [obs, reward]
        return out

    a, b, c = episode(4), episode(4), episode(5)
    assert a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))
    assert a[0] != c[0]


def test_at_the_step_limit_every_action_halts():
    env = ThinkEnv(data=HELDOUT, max_steps=2)
    env.reset(options={"puzzle": 0})
    assert env.step(0)[2] is False
    _, _, terminated, _, info = env.step(0)
    assert terminated and info["steps"] == 2
    with pytest.raises(HRMEvalError, match="reset"):
        env.step(0)


def test_verified_reward_needs_no_stored_answer():
    env = ThinkEnv(reward_on="verified")  # the generator's puzzles; pinned text has no stored answer
    env.reset(options={"puzzle": "1.3.5..4.6..5.6...2......6.1.6.4.2.."})
    *_, info = env.step(1)
    assert info["correct"] == bool(env.task.verify(env.puzzle.inputs, info["answer"]))


def test_the_vector_form_batches_the_same_episodes_as_separate_envs():
    vec = gym.make_vec("hrm_eval/Think-v0", num_envs=3, data=HELDOUT)
    assert isinstance(vec.unwrapped, ThinkVectorEnv)
    obs, infos = vec.reset(seed=10)
    for i in range(3):
        single = gym.make("hrm_eval/Think-v0", data=HELDOUT)
        o, info = single.reset(seed=10 + i)
        assert infos["puzzle"][i] == info["puzzle"] and np.allclose(obs[i], o, atol=1e-4)
    obs, rewards, terminated, truncated, infos = vec.step(np.array([1, 0, 0]))
    assert terminated.tolist() == [True, False, False] and obs[1:, 2].tolist() == [2, 2]
    obs, rewards, terminated, *_ = vec.step(np.array([1, 1, 0]))  # sub-env 0 starts anew (NEXT_STEP)
    assert obs[0, 2] == 1 and rewards[0] == 0 and terminated.tolist() == [False, True, False]


@pytest.mark.slow
def test_q_head_agent_on_the_vector_env_equals_adaptive_halting_in_the_engine():
    """200 held-out puzzles, one sub-environment each, played once (autoreset disabled)."""
    vec = ThinkVectorEnv(PUZZLES, data=HELDOUT, autoreset_mode="disabled")
    played = play_set(vec, QHeadAgent(vec), range(PUZZLES))
    correct, steps = played["correct"], played["steps"]

    x, y = vec.source.inputs[:PUZZLES], vec.source.labels[:PUZZLES]
    engine = ACTEngine(vec.model, slots=64, halting=HaltingPolicy("adaptive"))
    ran = engine.run_all(torch.as_tensor(x), torch.zeros(PUZZLES, dtype=torch.long), torch.as_tensor(y))
    exact = ran.exact_by_step[torch.arange(PUZZLES), ran.steps.long() - 1].numpy()
    assert correct.mean() == exact.mean() and steps.mean() == ran.steps.double().mean().item()
    assert np.array_equal(correct, exact) and np.array_equal(steps, ran.steps.numpy())  # puzzle by puzzle
    assert correct.mean() > 0.9 and steps.mean() < 4  # the model card's 0.945 at 3.44 steps, on all 2,000


def test_threshold_agent_halts_on_the_q_halt_probability():
    agent = ThresholdAgent(0.9)
    logit = np.log(0.9 / 0.1)
    obs = np.array([[logit + 1e-3, 0, 1, 0, 0], [logit - 1e-3, 0, 1, 0, 0]], dtype=np.float32)
    assert agent.act(obs).tolist() == [1, 0] and agent.act(obs[0]) == 1


def test_bad_settings_are_one_line_errors():
    with pytest.raises(HRMEvalError, match="reward_on"):
        ThinkEnv(data=HELDOUT, reward_on="close")
    with pytest.raises(HRMEvalError, match="autoreset_mode"):
        ThinkVectorEnv(2, data=HELDOUT, autoreset_mode="same-step")
    env = ThinkEnv(data=HELDOUT)
    env.reset(seed=0)
    with pytest.raises(HRMEvalError, match="0 .continue. or 1"):
        env.step(2)
