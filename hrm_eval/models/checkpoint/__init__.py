"""Checkpoints: the only part of `hrm_eval.models` that reads files.

format        the file format: step_<N> names, key prefixes, the model folder's files
read          finding a checkpoint and reading its tensors, never running its code
architecture  the architecture from the tensors and the files beside them, checked
restore       load_checkpoint: all of the above, then the model holding the tensors
"""

from hrm_eval.models.checkpoint.architecture import (
    alarming_assumptions,
    checkpoint_dataset,
    count_state_values,
    infer_from_tensors,
    read_all_config,
    run_data_path,
)
from hrm_eval.models.checkpoint.format import (
    CONFIG_FILE,
    CONFIG_METADATA_KEY,
    SAVE_PREFIX,
    STEP_RE,
    WEIGHTS_FILE,
    list_steps,
    strip_prefix,
)
from hrm_eval.models.checkpoint.read import (
    find_nonfinite,
    read_state_dict,
    resolve_checkpoint_path,
    step_of,
)
from hrm_eval.models.checkpoint.restore import LoadedCheckpoint, load_checkpoint

__all__ = [
    "CONFIG_FILE",
    "CONFIG_METADATA_KEY",
    "SAVE_PREFIX",
    "STEP_RE",
    "WEIGHTS_FILE",
    "LoadedCheckpoint",
    "alarming_assumptions",
    "checkpoint_dataset",
    "count_state_values",
    "find_nonfinite",
    "infer_from_tensors",
    "list_steps",
    "load_checkpoint",
    "read_all_config",
    "read_state_dict",
    "resolve_checkpoint_path",
    "run_data_path",
    "step_of",
    "strip_prefix",
]
