"""Members: checkpoints run as parts of a multi-checkpoint job (an ensemble, a comparison).

Loading them against the data (`load`) and what each member predicted under each view
(`hrm_eval.inference.views`), cached once and shared by `hrm_eval.ensemble` and
`hrm_eval.compare` (`predictions`). One checkpoint's evaluation is `hrm_eval.evaluation`.
"""
