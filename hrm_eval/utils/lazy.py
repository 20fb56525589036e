"""Package faces that hand names on without importing them: each name's module is imported on
first use, so that importing a package (or a light module inside it, such as its `config`)
does not pay for torch."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(package: str, table: Dict[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """(`__getattr__`, `__dir__`) for `package`, handing on `table`'s names (name -> module)."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name]), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> List[str]:
        return sorted({*table, *getattr(sys.modules[package], "__all__", ())})

    return __getattr__, __dir__
