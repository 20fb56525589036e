"""The optimiser pieces against hand-computed numbers: the warm-up + cosine LR, the sparse
sign-SGD of the puzzle embedding, and the EMA of the weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hrm_eval.models.layers import SparsePuzzleEmbedding
from hrm_eval.training.optim import EMA, SparseSignSGD, cosine_lr, maybe_sparse_optimizer, world


# ---- cosine_lr ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),  # warm-up start
        (1, 0.25),  # warm-up: base * step / warmup
        (2, 0.5),  # warm-up middle
        (4, 1.0),  # warm-up end = cosine start (progress 0)
        (6, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25))),
        (8, 0.55),  # cosine middle: min + (1 - min) / 2
        (12, 0.1),  # end of the schedule: base * min_ratio
    ],
)
def test_cosine_lr_hand_computed(step, expected):
    assert cosine_lr(step, 1.0, warmup_steps=4, total_steps=12, min_ratio=0.1) == pytest.approx(expected, abs=1e-12)


def test_cosine_lr_scales_with_base_and_edge_cases():
    assert cosine_lr(8, 3e-4, 4, 12, 0.1) == pytest.approx(3e-4 * 0.55)
    assert cosine_lr(12, 7e-5, 4, 12, 0.0) == pytest.approx(0.0, abs=1e-20)
    assert cosine_lr(0, 2.0, 0, 10, 0.5) == 2.0  # no warm-up: full LR at once
    assert all(cosine_lr(s, 1e-3, 0, 10, 1.0) == pytest.approx(1e-3) for s in range(11))  # min_ratio 1: constant
    assert cosine_lr(3, 1.0, 5, 5, 0.0) == pytest.approx(0.6)  # warm-up as long as the run


# ---- SparseSignSGD ------------------------------------------------------------------------------
def embedding_with_grads(ids, grads, weights):
    emb = SparsePuzzleEmbedding(len(weights), len(weights[0]), cast_to=torch.float32)
    emb.weights.copy_(torch.tensor(weights))
    emb.train()
    rows = emb(torch.tensor(ids, dtype=torch.int32))
    (rows * torch.tensor(grads)).sum().backward()  # d loss / d row i = grads[i]
    return emb


def test_sparse_sign_sgd_sums_duplicate_ids_then_takes_the_sign():
    weights = [[1.0, -2.0, 0.5], [2.0, 4.0, -1.0], [3.0, 3.0, 3.0], [-1.0, 0.0, 8.0], [5.0, 5.0, 5.0]]
    ids = [1, 3, 1]
    grads = [
        [0.3, -1.0, 0.2],
        [-2.0, 0.5, 0.0],
        [-0.1, 0.4, -0.2],
    ]  # row 1 is used twice: summed [0.2, -0.6, 0.0] (sign +, -, 0)
    emb = embedding_with_grads(ids, grads, weights)
    opt = SparseSignSGD(emb, weight_decay=0.5)
    opt.lr = 0.1
    opt.step()

    decay = 1 - 0.1 * 0.5
    expected = torch.tensor(weights)
    expected[1] = torch.tensor([2.0 * decay - 0.1, 4.0 * decay + 0.1, -1.0 * decay])  # sign 0: decay only
    expected[3] = torch.tensor([-1.0 * decay + 0.1, 0.0 - 0.1, 8.0 * decay])  # sign(-2, .5, 0)
    torch.testing.assert_close(emb.weights, expected, rtol=0, atol=1e-6)
    for untouched in (0, 2, 4):
        assert torch.equal(emb.weights[untouched], torch.tensor(weights[untouched]))

    opt.zero_grad()
    assert emb.local_weights is None and emb.local_ids is None
    before = emb.weights.clone()
    opt.step()  # nothing looked up since: nothing changes
    assert torch.equal(emb.weights, before)


def test_sparse_embedding_records_rows_only_when_training_with_grad():
    emb = SparsePuzzleEmbedding(3, 2, cast_to=torch.float32)
    emb.eval()
    emb(torch.tensor([0, 1]))
    assert emb.local_weights is None
    emb.train()
    with torch.no_grad():  # the ACT's bootstrapping second step must not replace the recorded rows
        emb(torch.tensor([2]))
    assert emb.local_weights is None
    emb(torch.tensor([1, 1]))
    assert emb.local_ids.tolist() == [1, 1] and emb.local_weights.requires_grad


def test_maybe_sparse_optimizer_only_for_a_puzzle_embedding():
    class Inner(nn.Module):
        def __init__(self, with_emb: bool):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            if with_emb:
                self.puzzle_emb = SparsePuzzleEmbedding(4, 2, cast_to=torch.float32)

    assert maybe_sparse_optimizer(Inner(False), 0.1, 1) is None
    opt = maybe_sparse_optimizer(Inner(True), 0.1, 1)
    assert isinstance(opt, SparseSignSGD) and opt.weight_decay == 0.1 and opt.world_size == 1
    assert world() == (0, 1)


# ---- EMA ----------------------------------------------------------------------------------------
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0]))
        self.frozen = nn.Parameter(torch.tensor([7.0]), requires_grad=False)
        self.register_buffer("buf", torch.tensor([5.0]))


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Tiny()


def test_ema_update_arithmetic_and_state_dict():
    model = Outer()
    ema = EMA(model, rate=0.9)
    assert set(ema.shadow) == {"inner.w"}  # trainable parameters only
    with torch.no_grad():
        model.inner.w.copy_(torch.tensor([11.0, -8.0]))
    ema.update(model)
    torch.testing.assert_close(ema.shadow["inner.w"], torch.tensor([0.9 * 1 + 0.1 * 11, 0.9 * 2 + 0.1 * -8]))
    with torch.no_grad():
        model.inner.w.copy_(torch.tensor([0.0, 0.0]))
        model.inner.buf.fill_(6.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["inner.w"], torch.tensor([0.9 * 2.0, 0.9 * 1.0]))

    sd = ema.state_dict_with(model.inner, prefix="inner.")
    assert set(sd) == {"w", "frozen", "buf"}
    torch.testing.assert_close(sd["w"], torch.tensor([1.8, 0.9]))
    assert sd["frozen"].item() == 7.0 and sd["buf"].item() == 6.0  # as they are now, not averaged
    assert torch.equal(model.inner.w, torch.tensor([0.0, 0.0]))  # the model keeps its raw weights
    sd["w"].add_(1)
    torch.testing.assert_close(ema.shadow["inner.w"], torch.tensor([1.8, 0.9]))  # a copy, not the shadow itself

    whole = ema.state_dict_with(model)
    assert set(whole) == {"inner.w", "inner.frozen", "inner.buf"}
    torch.testing.assert_close(whole["inner.w"], torch.tensor([1.8, 0.9]))
