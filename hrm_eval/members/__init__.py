"""Members: checkpoints run as parts of a multi-checkpoint job (an ensemble, a comparison).

Finding and loading them against the data (`load`), the views a puzzle is run under
(`views`: test-time augmentation; the identity view is a plain run), and what each member
predicted, cached once and shared by `hrm_eval.ensemble` and `hrm_eval.compare`
(`predictions`). One checkpoint's evaluation is `hrm_eval.evaluation`.
"""
