"""YAML configs loaded into Pydantic models, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Literal, Optional, Type, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hrm_eval.utils.errors import HRMEvalError

T = TypeVar("T", bound=BaseModel)


class EvalConfig(BaseModel):
    """configs/eval_config.yaml: every field can be overridden by the command-line flag of the same name."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    checkpoint: Optional[str] = None          # step_<N> file, `checkpoint` file or run directory
    data_path: Optional[str] = None           # dataset directory, or a .csv / .jsonl file of puzzles
    split: str = "test"
    task: Optional[str] = None                # puzzle task for verifiers / raw files; detected when absent
    output_dir: str = "outputs/eval"
    device: str = "auto"                      # auto | cpu | cuda | cuda:N | mps
    dtype: Optional[Literal["float32", "bfloat16", "float16"]] = None  # default: the checkpoint's forward_dtype
    batch_size: int = Field(64, ge=1)
    limit: Optional[int] = Field(None, ge=1)
    save_predictions: bool = False
    progress: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    model_config_path: Optional[str] = None   # architecture YAML for checkpoints without all_config.yaml
    arch_overrides: Dict[str, Any] = Field(default_factory=dict)


def read_yaml(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise HRMEvalError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise HRMEvalError(f"cannot parse {path}: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise HRMEvalError(f"{path}: expected a mapping at the top level")
    return data


def load_config(path: str | Path, schema: Type[T] = EvalConfig, overrides: Optional[Dict[str, Any]] = None) -> T:  # type: ignore[assignment]
    """Load a YAML file into `schema`; `overrides` (e.g. CLI flags that were given) win."""
    data = read_yaml(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return validate_config(data, schema, str(path))


def validate_config(data: Dict[str, Any], schema: Type[T], origin: str) -> T:
    try:
        return schema(**data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        raise HRMEvalError(f"{origin}: {loc}: {err['msg']}") from e
