"""Upper bounds on every number a file or a flag can set: one place, so that the architecture
fields (ModelConfig), the run-time flags (the config models of the modes) and any new flag
(test-time scaling's --views / --budget) use the same documented maxima.

Each bound is far above every public checkpoint and every sensible run (the values in the
comments), and far below what makes one step run for hours or ask for more memory than a
machine has: without them `halt_max_steps: 1e9` asked for 30-60 GiB, `H_cycles: 1e6` ran for
minutes without a word, and `--threads 100000` made libgomp abort the process.
"""

from __future__ import annotations

# ---- architecture (ModelConfig) ---------------------------------------------------------------
MAX_CYCLES = 64  # H_cycles / L_cycles: public HRM 2/2, TRM 3/6
MAX_LAYERS = 256  # H_layers / L_layers: public 4/4 (HRM), 2 (TRM)
MAX_HALT_STEPS = 1024  # halt_max_steps: public 16
MAX_HIDDEN_SIZE = 65536  # hidden_size: public 512
MAX_HEADS = 1024  # num_heads: public 8
MAX_EXPANSION = 64.0  # MLP width / hidden size: public 4
MAX_SEQ_LEN = 1 << 20  # tokens per puzzle: ARC 900, maze 900 (30x30)
MAX_VOCAB_SIZE = 1 << 20  # tokens: ARC 12, Sudoku 11
MAX_PUZZLE_IDENTIFIERS = 1 << 28  # rows of the puzzle-embedding table: ARC with augmentations ~1M
MAX_PUZZLE_EMB_LEN = 4096  # TRM puzzle-embedding positions: public 16

# ---- run-time flags ----------------------------------------------------------------------------
MAX_STEPS = MAX_HALT_STEPS  # --max-steps: the ACT loop never runs more steps than a model may have
MAX_VIEWS = 1_000  # --tta, --views: test-time views (attempts) of each puzzle
MAX_BUDGET = 100_000  # --budget, --attempt-steps: ACT steps one puzzle may use over all its attempts
MAX_THREADS = 1024  # --threads: more than any machine's cores; 100,000 makes libgomp abort
MAX_BATCH_SIZE = 1 << 20  # --batch-size: puzzles per forward pass
MAX_LIMIT = 1 << 31  # --limit: puzzles (an int32 index)
