"""The ACT loop's state for a batch of puzzles, stepped one ACT step at a time on chosen rows:
what ThinkEnv (one row) and ThinkVectorEnv (one row per sub-environment, one model call per
step for all of them) share. It calls the model the way the engine does (embeddings once per
puzzle, fresh H_init / L_init states, `inner.step`), so its answers and Q values are the
engine's."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hrm_eval import resources
from hrm_eval.data.tasks import all_tasks, detect_task, get_task
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.data.tasks.sudoku import DIGIT_OFFSET, SudokuTask
from hrm_eval.models.act import ACTModel
from hrm_eval.models.base import InnerCarry
from hrm_eval.models.checkpoint import LoadedCheckpoint, load_checkpoint, resolve_checkpoint_path
from hrm_eval.utils.errors import HRMEvalError

OBS_FIELDS = ("q_halt", "q_continue", "step", "changed", "valid")  # the observation vector, in order
_MODELS: dict[tuple[str, str, str | None, str | None], ACTModel] = {}  # loaded once per process: many envs share one


def load_model(checkpoint: Any, *, device: str = "cpu", dtype: str | None = None, task: str | None = None):
    """(model, task): an ACTModel / LoadedCheckpoint as given, or a checkpoint path or name
    (default: the bundled run) loaded once per process and shared by every environment."""

    if isinstance(checkpoint, LoadedCheckpoint):
        checkpoint = checkpoint.model
    if isinstance(checkpoint, ACTModel):
        model = checkpoint
    else:
        path = resolve_checkpoint_path(checkpoint if checkpoint is not None else resources.bundled_run())
        key = (str(path.resolve()), device, dtype, task)  # the task may set seq_len: part of the key
        if key not in _MODELS:
            probe = load_checkpoint(path, require_seq_len=False, device=device, dtype=dtype)
            if task and get_task(task).vocab_size != probe.config.vocab_size:
                raise HRMEvalError(
                    f"{path} (vocab_size {probe.config.vocab_size}) was not trained on {task} "
                    f"({get_task(task).describe_layout()}); give a checkpoint of that task"
                )
            if probe.sources["seq_len"].startswith("unknown"):  # a rope model: the task's layout says it
                seq_len = _task_seq_len(task, probe.config.vocab_size, path)
                probe = load_checkpoint(path, overrides={"seq_len": seq_len}, device=device, dtype=dtype)
            _MODELS[key] = probe.model.eval()
        model = _MODELS[key]
    cfg = model.config
    found = get_task(task) if task else detect_task(cfg.vocab_size, cfg.seq_len)
    if found is None:
        raise HRMEvalError(f"no single task has vocab_size {cfg.vocab_size} and seq_len {cfg.seq_len}; give task=...")
    if not found.matches(cfg.vocab_size, cfg.seq_len):
        raise HRMEvalError(
            f"the model (vocab_size {cfg.vocab_size}, seq_len {cfg.seq_len}) was not trained on {found.name} "
            f"({found.describe_layout()}); give a checkpoint of that task"
        )
    return model, found


def _task_seq_len(task: str | None, vocab_size: int, path: Any) -> int:
    """The sequence length of the named task, or of the one fixed-size task of this vocabulary."""

    fits = [get_task(task)] if task else [t for t in all_tasks() if t.vocab_size == vocab_size]
    sized = [t for t in fits if t.seq_len is not None]
    if len(sized) != 1:
        raise HRMEvalError(f"{path} does not say its sequence length: give the task (task=...)")
    return int(sized[0].seq_len)  # type: ignore[arg-type]


class RuleCheck:
    """Valid-by-the-rules for a batch of answers: vectorised for Sudoku (every row, column and
    box holds each digit once and the givens are kept), the task's `verify` row by row else."""

    def __init__(self, task: PuzzleTask, device: torch.device):
        self.task = task
        self.units: torch.Tensor | None = None
        if isinstance(task, SudokuTask):
            n, L = task.n, task.seq_len
            r, c = np.divmod(np.arange(L), n)
            box = (r // task.box_rows) * (n // task.box_cols) + c // task.box_cols
            units = np.concatenate([r[None] == np.arange(n)[:, None], c[None] == np.arange(n)[:, None]])
            units = np.concatenate([units, box[None] == np.arange(n)[:, None]])  # [3n, L]
            self.units = torch.as_tensor(units, dtype=torch.float32, device=device)
            self.n = n

    def __call__(self, inputs: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
        """inputs, preds [B, L] -> [B] bool."""
        if self.units is None:
            x, p = inputs.cpu().numpy(), preds.cpu().numpy()
            return torch.tensor([bool(self.task.verify(a, b)) for a, b in zip(x, p)], device=preds.device)
        digits = preds.long() - DIGIT_OFFSET  # 1..n on a filled cell
        in_range = ((digits >= 1) & (digits <= self.n)).all(-1)
        onehot = (digits[..., None] == torch.arange(1, self.n + 1, device=preds.device)).float()  # [B, L, n]
        counts = torch.einsum("ul,bln->bun", self.units, onehot)  # [B, 3n, n]: each digit once per unit
        given = (inputs >= 1 + DIGIT_OFFSET) & (inputs <= self.n + DIGIT_OFFSET)
        kept = ((preds == inputs) | ~given).all(-1)
        return in_range & kept & (counts == 1).all(-1).all(-1)


class ThinkState:
    """`rows` puzzles in flight (device tensors). `begin` puts new puzzles into rows; `advance`
    runs one ACT step for the given rows, in one model call."""

    def __init__(self, model: ACTModel, task: PuzzleTask, rows: int):
        self.model, self.inner, self.task = model, model.inner, task
        cfg = model.config
        self.device = next(model.parameters()).device
        dev, L = self.device, cfg.seq_len
        shape = (rows, cfg.full_seq_len, cfg.hidden_size)
        self.carry = InnerCarry(
            torch.zeros(shape, dtype=cfg.torch_dtype, device=dev), torch.zeros(shape, dtype=cfg.torch_dtype, device=dev)
        )
        self.x = torch.zeros(shape, dtype=cfg.torch_dtype, device=dev)  # [N, S, h] input embeddings
        self.inputs = torch.zeros((rows, L), dtype=torch.long, device=dev)  # [N, L]
        self.labels = torch.full((rows, L), -100, dtype=torch.long, device=dev)  # [N, L]
        self.has_label = torch.zeros(rows, dtype=torch.bool, device=dev)
        self.answer = torch.zeros((rows, L), dtype=torch.long, device=dev)  # [N, L] after the last step
        self.steps = torch.zeros(rows, dtype=torch.int32, device=dev)
        self.q_halt = torch.zeros(rows, dtype=torch.float32, device=dev)
        self.q_continue = torch.zeros(rows, dtype=torch.float32, device=dev)
        self.changed = torch.zeros(rows, dtype=torch.int32, device=dev)  # cells changed by the last step
        self.valid = torch.zeros(rows, dtype=torch.bool, device=dev)
        self.check = RuleCheck(task, dev)

    @torch.inference_mode()
    def begin(self, rows: torch.Tensor, inputs: np.ndarray, labels: list) -> None:
        """New puzzles (inputs [n, L]; labels: [L] arrays or None) into `rows` [n], not stepped yet."""
        dev = self.device
        x = torch.as_tensor(inputs, dtype=torch.long, device=dev)
        self.carry.z_H[rows] = self.inner.H_init
        self.carry.z_L[rows] = self.inner.L_init
        ids = torch.zeros(len(rows), dtype=torch.int32, device=dev)  # the bundled tasks have one identifier
        self.x[rows] = self.inner.input_embeddings(x, ids)
        self.inputs[rows] = x
        self.answer[rows] = x  # "changed" at the first step counts the cells written over the puzzle
        self.steps[rows] = 0
        for row, y in zip(rows.tolist(), labels):
            self.has_label[row] = y is not None
            self.labels[row] = torch.as_tensor(y, device=dev) if y is not None else -100

    @torch.inference_mode()
    def advance(self, rows: torch.Tensor) -> None:
        """One ACT step for `rows` [n] (all of them in one model call)."""
        if rows.numel() == 0:
            return
        carry = InnerCarry(self.carry.z_H[rows], self.carry.z_L[rows])
        carry, logits, q_halt, q_continue = self.inner.step(carry, self.x[rows], self.inner.cos_sin())
        self.carry.z_H[rows], self.carry.z_L[rows] = carry.z_H, carry.z_L
        preds = logits.argmax(-1)  # [n, L]
        self.changed[rows] = (preds != self.answer[rows]).sum(-1).to(torch.int32)
        self.answer[rows] = preds
        self.steps[rows] += 1
        self.q_halt[rows], self.q_continue[rows] = q_halt, q_continue
        self.valid[rows] = self.check(self.inputs[rows], preds)

    def correct(self, rows: torch.Tensor, verified: bool) -> torch.Tensor:
        """[n] bool: the current answer is exactly the stored one (where known and not `verified`),
        else valid by the rules."""
        labels, answer = self.labels[rows], self.answer[rows]
        exact = ((answer == labels) | (labels == -100)).all(-1)
        return torch.where(self.has_label[rows] & (not verified), exact, self.valid[rows])

    def observe(self, rows: torch.Tensor) -> np.ndarray:
        """[n, 5] float32: q_halt, q_continue, steps run, cells changed by the last step, valid."""
        cols = (self.q_halt[rows], self.q_continue[rows], self.steps[rows], self.changed[rows], self.valid[rows])
        return torch.stack([c.float() for c in cols], -1).cpu().numpy()
