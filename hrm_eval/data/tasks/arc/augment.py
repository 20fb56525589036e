"""ARC augmentation: a dihedral transform and a recolouring, the names that record them, and undoing them.

Augmentation = one of the 8 dihedral transforms (`grids.DIHEDRAL_NAMES`) and a permutation of
colours 1-9 (0, the background, stays fixed). An augmented puzzle is named `<id>_t<t>_<map>`
where `<map>` is the 10 digits of the colour map (`map[c]` = new colour of `c`, so it always
starts with 0); TRM writes the same as `<id>|||t<t>|||<map>`. `parse_puzzle_name` reads both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from hrm_eval.data.grids import dihedral_transform, inverse_dihedral_transform

ColourMap = Sequence[int] | np.ndarray  # new colour of each colour 0-9


def augment_grid(grid: np.ndarray, t: int, colour_map: np.ndarray | None) -> np.ndarray:
    """Recolour with `colour_map` (new colour of c = colour_map[c]), then dihedral transform `t`."""
    grid = np.asarray(grid)
    if colour_map is not None:
        grid = np.asarray(colour_map, dtype=np.uint8)[grid]
    return np.ascontiguousarray(dihedral_transform(grid, t))


def inverse_augment(grid: np.ndarray, t: int | None, colour_map: ColourMap | None) -> np.ndarray:
    """Undo `augment_grid`: inverse dihedral transform first, then the inverse colour map.
    `t` None (or 0) and `colour_map` None mean no transform / no recolouring."""
    grid = np.asarray(grid)
    if t:
        grid = inverse_dihedral_transform(grid, t)
    if colour_map is not None:
        inverse = np.argsort(np.asarray(colour_map)).astype(np.uint8)
        grid = inverse[grid]
    return np.ascontiguousarray(grid, dtype=np.uint8)


def colour_map_string(colour_map: ColourMap) -> str:
    return "".join(str(int(c)) for c in colour_map)


def augmented_name(base_id: str, t: int, colour_map: ColourMap, separator: str = "_") -> str:
    """`<id>_t<t>_<map>` (HRM); with separator '|||' the TRM form `<id>|||t<t>|||<map>`."""
    return f"{base_id}{separator}t{int(t)}{separator}{colour_map_string(colour_map)}"


_HRM_NAME = re.compile(r"^(?P<base>.+)_t(?P<t>[0-7])_(?P<map>[0-9]{10})$")
_TRM_NAME = re.compile(r"^(?P<base>.+?)\|\|\|t(?P<t>[0-7])(?:\|\|\|(?P<map>[0-9]{10}))?$")


def _valid_colour_map(digits: str) -> bool:
    return sorted(digits) == list("0123456789")


def parse_puzzle_name(name: str) -> tuple[str, int | None, np.ndarray | None]:
    """(base_id, t, colour_map) of an identifier name.

    HRM `<id>_t<k>_<10 digits>`, TRM `<id>|||t<k>|||<10 digits>` (and TRM's colour-less
    `<id>|||t<k>`, which gives colour_map None). A plain id (or anything that is not a valid
    augmentation name, e.g. digits that are not a permutation of 0-9) gives (name, None, None)."""
    for pattern in (_TRM_NAME, _HRM_NAME):
        m = pattern.match(name)
        if m is None:
            continue
        digits = m.group("map")
        if digits is not None and not _valid_colour_map(digits):
            continue
        colour_map = None if digits is None else np.array([int(c) for c in digits], dtype=np.uint8)
        return m.group("base"), int(m.group("t")), colour_map
    return name, None, None
