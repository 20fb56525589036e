"""Loading in a fresh interpreter, as a command starts: what it imports and how much memory it takes."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import yaml

from hrm_eval.models import build_model
from hrm_eval.models.checkpoint.format import SAVE_PREFIX as PREFIX
from hrm_eval.models.config import HRMConfig
from tests.conftest import ROOT


def test_loading_does_not_import_the_compiler(tmp_path):
    """The shape check builds the model on the meta device; were the RoPE tables or the weight
    init computed there, torch's Python references would import torch._dynamo, ~2 s added to
    the start of every command. A fresh process, as a command is."""
    code = (
        "import sys, torch\n"
        "from hrm_eval.models.checkpoint import load_checkpoint\n"
        f"loaded = load_checkpoint({str(ROOT / 'checkpoints' / 'sudoku6-hard-hrm' / 'step_11250')!r})\n"
        "assert loaded.model.inner.rotary_emb.cos.abs().sum() > 0\n"  # real tables on the CPU model
        "print('torch._dynamo' in sys.modules)\n"
    )
    assert fresh_python(code) == "False"


def fresh_python(code: str) -> str:
    """What `code` prints, run in a new interpreter (as a command starts), one thread."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_loading_keeps_one_copy_of_the_weights(tmp_path):
    """The model is given the file's (memory-mapped) tensors, not copies into a randomly
    initialised model: a 100 MB puzzle-embedding table adds file pages, not 100 MB of anonymous
    memory (the old path added it twice over while checking it for NaN). A fresh process, so
    that its own memory is measured."""
    config = HRMConfig(
        hidden_size=64, num_heads=2, expansion=2, H_layers=1, L_layers=1, H_cycles=1, L_cycles=1,
        seq_len=16, vocab_size=12, num_puzzle_identifiers=400_000, puzzle_emb_ndim=64, halt_max_steps=2,
    )  # fmt: skip
    torch.manual_seed(0)
    state = build_model(config).inner.state_dict()
    state["puzzle_emb.weights"].normal_()  # 400,000 x 64 fp32: 102 MB
    torch.save({PREFIX + k: v for k, v in state.items()}, tmp_path / "step_1")
    (tmp_path / "all_config.yaml").write_text(yaml.safe_dump({"arch": config.to_arch_block()}))
    code = (
        "import torch\n"
        "from hrm_eval.models.checkpoint import load_checkpoint\n"
        "def anon_mb():\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith('RssAnon'))\n"
        "    return int(line.split()[1]) / 1024\n"
        "before = anon_mb()\n"
        f"loaded = load_checkpoint({str(tmp_path / 'step_1')!r}, overrides={{'seq_len': 16}})\n"
        "grown = anon_mb() - before\n"
        f"stored = torch.load({str(tmp_path / 'step_1')!r})  # after the measurement: this is a copy\n"
        f"table = stored[{PREFIX + 'puzzle_emb.weights'!r}]\n"
        "assert torch.equal(loaded.model.inner.puzzle_emb.weights, table)\n"
        "print(grown)\n"
    )
    # MB: one copy of the table alone is 102; 25 measured here (lazy imports, first-call setup), 122 before
    assert float(fresh_python(code)) < 60
