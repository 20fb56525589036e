"""`load_config`: a config file read into the config model of the mode it belongs to.

Each feature owns its mode's config model; this is the one place that knows them all, to pick
one by a file's content (notebooks: `load_config("configs/eval_config.yaml")`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from hrm_eval.evaluation.config import EvalConfig
from hrm_eval.training.config import TrainConfig
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.validation import read_yaml, validate_config

T = TypeVar("T", bound=BaseModel)


def load_config(path: str | Path, schema: type[T] | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """Load a YAML config into `schema`; `overrides` that are not None win. Without a schema it
    is picked by content: an `arch` block means a training/run config (all_config.yaml)."""
    data = read_yaml(path)
    if schema is None:
        schema = config_schema_for(data)  # type: ignore[assignment]
    elif "arch" in data and "arch" not in schema.model_fields:
        raise HRMEvalError(
            f"{path} is a training/run config (it has an `arch` block), not a {schema.__name__}: "
            "load it with load_config(path) or TrainConfig"
        )
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return validate_config(data, schema, str(path))  # type: ignore[arg-type]


def config_schema_for(data: Mapping[str, Any]) -> type[BaseModel]:
    """A run's all_config.yaml (an `arch` block) is a training config; anything else an evaluation's."""
    return TrainConfig if "arch" in data else EvalConfig
