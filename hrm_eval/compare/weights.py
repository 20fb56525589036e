"""Weight statistics of checkpoints: norms by module and the relative change from the previous
checkpoint (with the modules whose weights did not move)."""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Any

import torch

# Buffers that are constant by design (the initial recurrent states): never "did not move".
CONSTANT_TENSORS = ("H_init", "L_init")


def module_of(key: str) -> str:
    """`H_level.layers.0.mlp.down_proj.weight` -> `H_level.layers.0`; `lm_head.weight` -> `lm_head`."""
    m = re.match(r"^(.*?\.layers\.\d+)\.", key)
    if m:
        return m.group(1)
    return key.rsplit(".", 1)[0] if "." in key else key


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def weight_statistics(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Norms by module (L2 over all of a module's floating-point values) and the whole norm."""
    sq: dict[str, float] = OrderedDict()
    for k, v in sd.items():
        if v.is_floating_point():
            sq[module_of(k)] = sq.get(module_of(k), 0.0) + float(v.double().pow(2).sum())
    total = sum(sq.values())
    return {
        "weight_norm": _finite_or_none(math.sqrt(total)) if total >= 0 else None,
        "module_norms": {k: _finite_or_none(math.sqrt(s)) if s >= 0 else None for k, s in sq.items()},
    }


def weight_change(prev: dict[str, torch.Tensor], cur: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Relative change ||cur - prev|| / ||prev|| overall and by module, and the modules whose
    trained tensors are bit-identical to the previous checkpoint's."""
    if set(prev) != set(cur) or any(prev[k].shape != cur[k].shape for k in cur):
        return {"comparable": False, "reason": "different tensors or shapes (another architecture)"}
    diff: dict[str, float] = OrderedDict()
    base: dict[str, float] = OrderedDict()
    moved: dict[str, bool] = OrderedDict()
    for k, v in cur.items():
        if not v.is_floating_point():
            continue
        mod = module_of(k)
        d = v.double() - prev[k].double()
        diff[mod] = diff.get(mod, 0.0) + float(d.pow(2).sum())
        base[mod] = base.get(mod, 0.0) + float(prev[k].double().pow(2).sum())
        if k not in CONSTANT_TENSORS:
            moved[mod] = moved.get(mod, False) or not torch.equal(v, prev[k])
    rel = {m: _finite_or_none(math.sqrt(diff[m]) / math.sqrt(base[m])) if base[m] > 0 else None for m in diff}
    total_d, total_b = sum(diff.values()), sum(base.values())
    return {
        "comparable": True,
        "relative": _finite_or_none(math.sqrt(total_d) / math.sqrt(total_b)) if total_b > 0 else None,
        "modules": rel,
        "did_not_move": [m for m, mv in moved.items() if not mv],
    }
