"""ARC scoring lives with the ARC task (`hrm_eval.data.tasks.arc.scoring`; evaluation reaches it
through `PuzzleTask.scorer`). These names stay importable from here for existing callers."""

from hrm_eval.data.tasks.arc.scoring import (  # noqa: F401
    DEFAULT_KS,
    EMPTY_ANSWER,
    NUM_ATTEMPTS,
    SCORES_FILE,
    SUBMISSION_FILE,
    ArcScorer,
    ArcTestSet,
    ArcVotePool,
    find_prediction_files,
    score_arc_arrays,
    score_arc_predictions,
)
