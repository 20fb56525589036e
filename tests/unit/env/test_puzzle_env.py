"""PuzzleEnv against the Gymnasium API (check_env), seeding, the action mask and rewards of
episodes worked out by hand."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import hrm_eval.env
from hrm_eval.env import PuzzleEnv
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import ROOT

DATA = ROOT / "checkpoints" / "sudoku6-hard-hrm" / "data"
# 4x4: the answer is 1234/3412/2143/4321; blank cells 2 (needs 3) and 6 (needs 1)
TWO_BLANKS = "12.434.221434321"
# 5x5 maze with two shortest routes S-G of 4 steps: over the top (cells 7, 8, 13) and along the
# left and bottom (11, 16, 17)
MAZE = "#####\n#S  #\n# # #\n#  G#\n#####"


def action(cell: int, digit: int, n: int = 4) -> int:
    return cell * n + digit - 1


@pytest.mark.parametrize("env_id", hrm_eval.env.ENV_IDS)
def test_check_env_passes_without_a_warning(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning from the checker fails the test too
        check_env(env.unwrapped)
    env.close()


def test_every_id_is_registered_on_import():
    assert set(hrm_eval.env.ENV_IDS) <= set(gym.registry)
    assert gym.make("hrm_eval/Sudoku-v0").unwrapped.observation_space.shape == (81,)
    assert gym.make("hrm_eval/Sudoku4-v0").unwrapped.action_space.n == 16 * 4


@pytest.mark.parametrize("env_id", list(hrm_eval.env.PUZZLE_ENVS))
def test_same_seed_same_episode(env_id):
    def episode(seed):
        env = gym.make(env_id)
        obs, info = env.reset(seed=seed)
        out = [obs]
        rng = np.random.default_rng(0)
        for _ in range(5):
            legal = np.flatnonzero(info["action_mask"])
            obs, reward, terminated, truncated, info = env.step(int(rng.choice(legal)))
            out += [obs, reward]
            if terminated or truncated:
                break
        return out

    a, b, c = episode(7), episode(7), episode(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])  # another seed, another puzzle


def test_a_set_is_drawn_by_seed_and_a_puzzle_can_be_pinned():
    env = PuzzleEnv("sudoku6", DATA)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    assert np.array_equal(first, again)
    pinned, info = env.reset(options={"puzzle": 5})
    assert np.array_equal(pinned, env.source.inputs[5]) and info["puzzle"] == "5"
    with pytest.raises(HRMEvalError, match="outside the set"):
        env.reset(options={"puzzle": 1000})


@pytest.mark.parametrize("env_id", list(hrm_eval.env.PUZZLE_ENVS))
def test_the_mask_never_allows_writing_a_given_and_givens_never_change(env_id):
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(1)
    for episode in range(4):
        obs, info = env.reset(seed=episode)
        givens = env.game.open_cells(obs) == 0  # [L] cells no move may write
        for _ in range(60):
            mask = info["action_mask"]
            cells = np.array([env.game.cell_token(a)[0] for a in np.flatnonzero(mask)], dtype=int)
            assert not givens[cells].any()
            # half the time any action (also forbidden ones): the board's givens stay as they were
            a = (
                int(rng.choice(np.flatnonzero(mask)))
                if rng.random() < 0.5 and mask.any()
                else int(rng.integers(mask.size))
            )
            obs, _, terminated, truncated, info = env.step(a)
            assert np.array_equal(obs[givens], env.puzzle.inputs[givens])
            if terminated or truncated:
                break


def test_solving_by_hand_gives_the_solved_reward_minus_the_move_costs():
    env = PuzzleEnv("sudoku4", move_cost=0.1)
    obs, info = env.reset(options={"puzzle": TWO_BLANKS})
    assert np.flatnonzero(info["action_mask"]).tolist() == [action(2, 3), action(6, 1)]  # only the answers fit
    obs, reward, terminated, truncated, info = env.step(action(2, 3))
    assert (reward, terminated, truncated, info["solved"]) == (pytest.approx(-0.1), False, False, False)
    obs, reward, terminated, truncated, info = env.step(action(6, 1))
    assert (reward, terminated, truncated, info["solved"]) == (pytest.approx(0.9), True, False, True)
    assert env.task.decode(obs) == "1234341221434321"


def test_a_rule_break_changes_nothing_and_ends_the_episode_only_when_asked():
    plain = PuzzleEnv("sudoku4")
    obs, _ = plain.reset(options={"puzzle": TWO_BLANKS})
    after, reward, terminated, truncated, info = plain.step(action(2, 4))  # a second 4 in row 0
    assert (reward, terminated, truncated, info["legal"]) == (0.0, False, False, False)
    assert np.array_equal(after, obs)

    strict = PuzzleEnv("sudoku4", rule_break_reward=-1.0, move_cost=0.1)
    strict.reset(options={"puzzle": TWO_BLANKS})
    after, reward, terminated, truncated, info = strict.step(action(0, 1))  # writing over the given 1
    assert (reward, terminated, truncated, info["legal"]) == (pytest.approx(-1.1), True, False, False)
    assert np.array_equal(after, obs)


def test_the_move_limit_truncates():
    env = PuzzleEnv("sudoku4", max_moves=2)
    env.reset(options={"puzzle": TWO_BLANKS})
    assert env.step(action(2, 4))[2:4] == (False, False)
    _, reward, terminated, truncated, _ = env.step(action(2, 4))
    assert (reward, terminated, truncated) == (0.0, False, True)


def test_a_maze_is_solved_along_one_shortest_path_and_a_mixed_route_is_stuck():
    env = PuzzleEnv("maze", size=5)
    _, info = env.reset(options={"puzzle": MAZE})
    assert np.flatnonzero(info["action_mask"]).tolist() == [7, 8, 11, 13, 16, 17]
    _, _, _, _, info = env.step(7)
    assert np.flatnonzero(info["action_mask"]).tolist() == [8, 13, 17]  # 16 is on the other route
    _, reward, terminated, _, info = env.step(17)  # level 3 of the other route: level 2 cannot join them
    assert (reward, terminated, info["stuck"]) == (0.0, True, True)

    env.reset(options={"puzzle": MAZE})
    rewards = [env.step(cell)[1] for cell in (7, 8, 13)]
    assert rewards == [0.0, 0.0, 1.0]
    assert env.render() is None and env.task.verify(env.puzzle.inputs, env.board)


def test_render_modes():
    env = PuzzleEnv("sudoku4", render_mode="ansi")
    env.reset(options={"puzzle": TWO_BLANKS})
    assert env.render() == "+-----+-----+\n| 1 2 | . 4 |\n| 3 4 | . 2 |\n+-----+-----+\n" + (
        "| 2 1 | 4 3 |\n| 4 3 | 2 1 |\n+-----+-----+\n"
    )
    image = PuzzleEnv("sudoku4", render_mode="rgb_array")
    image.reset(options={"puzzle": TWO_BLANKS})
    before = image.render()
    assert before.shape == (97, 97, 3) and before.dtype == np.uint8
    image.step(action(2, 3))
    after = image.render()
    changed = np.argwhere((before != after).any(-1))
    # only cell 2 (row 0, column 2: pixels 48..72) changed, and it got the placed digits' blue
    assert (
        changed[:, 0].min() >= 0 and changed[:, 0].max() < 24 and 48 <= changed[:, 1].min() < changed[:, 1].max() < 72
    )
    assert (after[changed[:, 0], changed[:, 1]] == (30, 90, 220)).all()


def test_bad_settings_are_one_line_errors():
    with pytest.raises(HRMEvalError, match="render_mode"):
        PuzzleEnv("sudoku4", render_mode="human")
    with pytest.raises(HRMEvalError, match="unknown task"):
        PuzzleEnv("chess")
    with pytest.raises(HRMEvalError, match="difficulty"):
        PuzzleEnv("sudoku6", DATA, difficulty=(30, 40))
    env = PuzzleEnv("sudoku4")
    env.reset(seed=0)
    with pytest.raises(HRMEvalError, match="outside"):
        env.step(64)


def test_make_vec_steps_puzzle_envs_together():
    vec = gym.make_vec("hrm_eval/Sudoku4-v0", num_envs=3)
    obs, infos = vec.reset(seed=5)
    assert obs.shape == (3, 16) and infos["action_mask"].shape == (3, 64)
    for i in range(3):  # sub-environment i is the plain env seeded with 5 + i
        single, _ = gym.make("hrm_eval/Sudoku4-v0").reset(seed=5 + i)
        assert np.array_equal(obs[i], single)
    moves = np.array([np.flatnonzero(m)[0] for m in infos["action_mask"]])
    after, rewards, terminated, truncated, infos = vec.step(moves)
    assert ((after != obs).sum(1) == 1).all()  # each board got exactly its one legal placement


def test_a_csv_or_jsonl_file_gives_the_same_puzzles_as_the_dataset_built_from_it(tmp_path):
    built = PuzzleEnv("sudoku6", DATA).source
    csv = PuzzleEnv("sudoku6", DATA.parent / "raw" / "test.csv").source
    assert np.array_equal(csv.inputs, built.inputs) and np.array_equal(csv.labels, built.labels)
    lines = [
        f'{{"input_sequence": {x.tolist()}, "target_sequence": {y.tolist()}}}'
        for x, y in zip(built.inputs[:3], built.labels[:3])
    ]
    (tmp_path / "three.jsonl").write_text("\n".join(lines) + "\n")
    jsonl = PuzzleEnv("sudoku6", tmp_path / "three.jsonl")
    assert len(jsonl.source) == 3
    obs, _ = jsonl.reset(options={"puzzle": 2})
    assert np.array_equal(obs, built.inputs[2])


def test_difficulty_ranges_hold_for_generated_and_stored_puzzles():
    from hrm_eval.data.tasks.maze import GOAL, START, shortest_distances

    maze = PuzzleEnv("maze", difficulty=(10, 12))
    sudoku = PuzzleEnv("sudoku6", difficulty=(20, 21))
    stored = PuzzleEnv("sudoku6", DATA, difficulty=(25, 27))
    assert len(stored.source) > 0 and ((stored.source.inputs == 1).sum(1) >= 25).all()
    for seed in range(5):
        obs, _ = maze.reset(seed=seed)
        assert 10 <= shortest_distances(obs, int(np.flatnonzero(obs == START)[0]))[obs == GOAL][0] <= 12
        assert 20 <= (sudoku.reset(seed=seed)[0] == 1).sum() <= 21
