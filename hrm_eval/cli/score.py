"""`--mode score`: ARC predictions in the public all_preds format, scored by the official rules."""

from __future__ import annotations

from pathlib import Path

from hrm_eval.cli.base import Invocation, Mode, replaced_note
from hrm_eval.data.tasks.arc.scoring import score_arc_predictions
from hrm_eval.evaluation.config import ScoreConfig
from hrm_eval.utils.paths import OutputLock


def run_score(inv: Invocation) -> int:
    cfg = inv.config(ScoreConfig)
    out = Path(cfg.output_dir)
    with OutputLock(out):
        existed = (out / "arc_scores.json").exists()
        scores = score_arc_predictions(cfg.data_path, cfg.predictions, out)
    for rule in ("strict", "fractional"):
        print(f"{rule:10s} " + "  ".join(f"{k} {v:.4f}" for k, v in scores[rule].items()))
    print(f"scores: {out / 'arc_scores.json'}{replaced_note(existed)}\nsubmission: {out / 'submission.json'}")
    return 0


SCORE = Mode(
    "score", "Score ARC predictions (public all_preds files) with the official voting rules.", run_score, ScoreConfig
)
