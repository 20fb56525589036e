"""Settings files read and checked: one reader for YAML/JSON mappings, one formatter for
Pydantic validation errors, one did-you-mean rule for unknown names.

Its own module, below `utils/config.py` (the modes' shared config bases), because the model
code (`hrm_eval.models`) reads and checks architecture files too and must not depend on the
modes' settings.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError

T = TypeVar("T", bound=BaseModel)


def read_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A YAML (or JSON) file holding a mapping; every problem is one line naming the file
    (read through the guarded reader: kind, size, depth, aliases, keys checked)."""
    data = guarded.read_yaml(path, what)
    return guarded.mapping({} if data is None else data, str(path))


def unknown_field_error(name: str, known: Any, where: str) -> str:
    """`<where> 'num_head': no such field; did you mean num_heads?` (the nearest known name)."""
    near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else f" (known: {', '.join(sorted(known))})"
    return f"{where} {name!r}: no such field{hint}"


def validation_error_line(
    error: ValidationError, names: Mapping[str, str] | None = None, schema: type[BaseModel] | None = None
) -> str:
    """The first problem of a ValidationError as `field 'value': message`; `names` renames
    top-level fields (e.g. to the command-line flag that set them). An unknown key comes first
    (a typo'd `checkpiont:` is the reason `checkpoint` is missing), with the nearest name of
    `schema` when one is close."""
    errors = error.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(x) for x in err["loc"]]
    field = ".".join(loc) or "config"
    if err["type"] == "extra_forbidden" and schema is not None and len(loc) == 1:
        return unknown_field_error(loc[0], schema.model_fields, "unknown setting")
    if loc and names and loc[0] in names:
        field = names[loc[0]] + "".join(f".{x}" for x in loc[1:])
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check across fields: its message names them (the input is the whole mapping)
        return msg
    if err["type"] == "missing" or isinstance(err["input"], (dict, list)):  # a block: its message says where
        return f"{field}: {msg}"
    return f"{field} {short_repr(err['input'])}: {msg}"


def short_repr(value: Any, width: int = 60) -> str:
    """repr of a value for a one-line message: a 400-digit number or a long list cut short."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 20]}...({len(text):,} characters)"


def validate_config(data: dict[str, Any], schema: type[T], origin: str, names: Mapping[str, str] | None = None) -> T:
    try:
        return schema(**data)
    except ValidationError as e:
        line = validation_error_line(e, names, schema)
        raise HRMEvalError(f"{origin}: {line}" if origin else line) from None
