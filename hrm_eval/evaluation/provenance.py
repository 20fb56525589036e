"""What every results file records so that its numbers can be reproduced: the checkpoint(s),
the data, the device and the *effective* dtype (what the models ran in, not what was asked
for), the library versions and the command. `RESULTS_SCHEMA_VERSION` is written at the top of
every results file (evaluate, ensemble, compare, stacker) and changes when their layout does.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

import hrm_eval
from hrm_eval.data.dataset import PuzzleDataset
from hrm_eval.data.tasks.base import PuzzleTask
from hrm_eval.models.checkpoint import LoadedCheckpoint
from hrm_eval.models.hub import hub_origin

RESULTS_SCHEMA_VERSION = 1


def versions() -> dict[str, str]:
    return {
        "hrm_eval": hrm_eval.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def checkpoint_record(loaded: LoadedCheckpoint) -> dict[str, Any]:
    """Which file, byte for byte, and where each config field came from."""
    record = {
        "path": str(loaded.path),
        "sha256": loaded.sha256,
        "step": loaded.step,
        "key_prefix": loaded.key_prefix,
        "config_sources": loaded.sources,
    }
    origin = hub_origin(loaded.path)
    if origin is not None:  # fetched from the Hugging Face Hub: which repo, at which commit
        record["hub"] = origin
    return record


def effective_dtype(loaded: Sequence[LoadedCheckpoint]) -> None | str | list:
    """The forward dtype the models ran in: one name, a list when members differ, None when
    no model ran."""
    names = [x.config.forward_dtype for x in loaded]
    if not names:
        return None
    return names[0] if len(set(names)) == 1 else names


def dataset_record(dataset: PuzzleDataset | None, task: PuzzleTask | None, **extra: Any) -> dict[str, Any] | None:
    if dataset is None:
        return None
    return {
        "path": dataset.source,
        "split": dataset.split,
        "fingerprint_sha256": dataset.fingerprint(),
        "metadata": dataset.metadata.model_dump(),
        "task": task.name if task else None,
        "num_examples": len(dataset),
        **extra,
    }


def build_provenance(
    *,
    checkpoints: Sequence[LoadedCheckpoint],
    dataset: PuzzleDataset | None,
    task: PuzzleTask | None,
    device: str,
    batch_size: int,
    limit: int | None,
    dataset_extra: dict[str, Any] | None = None,
    evaluation_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance block: one checkpoint gives `checkpoint` and its `model_config`, several
    give `checkpoints` (in the order given)."""
    prov: dict[str, Any] = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if len(checkpoints) == 1:
        loaded = checkpoints[0]
        prov["checkpoint"] = checkpoint_record(loaded)
        prov["model_config"] = loaded.config.model_dump() | {
            "family": loaded.config.family,
            "variant": loaded.config.variant,
        }
    else:
        prov["checkpoints"] = [checkpoint_record(x) for x in checkpoints]
    prov["dataset"] = dataset_record(dataset, task, **(dataset_extra or {}))
    prov["evaluation"] = {
        "device": device,
        "dtype": effective_dtype(checkpoints),
        "batch_size": batch_size,
        "limit": limit,
        **(evaluation_extra or {}),
    }
    prov["versions"] = versions()
    prov["command"] = sys.argv
    return prov
