"""Shared helpers for the dataset-building tests."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

OFFICIAL = FIXTURES / "official_data"


def relative_files(root: Path) -> set:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


def assert_same_tree(expected: Path, actual: Path) -> None:
    """Same file names, every file identical byte for byte."""
    exp, act = relative_files(expected), relative_files(actual)
    assert exp == act
    for rel in sorted(exp):
        assert filecmp.cmp(expected / rel, actual / rel, shallow=False), f"{rel} differs"


def write_lines(path: Path, lines) -> Path:
    """Write raw CSV lines (already joined) with the public "\\r\\n" line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


@pytest.fixture
def official():
    """The folder of public-builder fixtures (raw CSVs and what the public builders made)."""
    return OFFICIAL


@pytest.fixture
def same_tree():
    return assert_same_tree


@pytest.fixture
def csv_lines():
    return write_lines


@pytest.fixture
def sudoku_rows():
    """The fixture's raw Sudoku rows as (question, answer, rating)."""
    import csv

    with open(OFFICIAL / "sudoku_raw" / "test.csv", newline="") as f:
        return [(q, a, int(r)) for _, q, a, r in list(csv.reader(f))[1:]]


@pytest.fixture
def maze_rows():
    import csv

    with open(OFFICIAL / "maze_raw" / "test.csv", newline="") as f:
        return [(q, a, int(r)) for _, q, a, r in list(csv.reader(f))[1:]]


@pytest.fixture
def sudoku_train_dir(tmp_path):
    """A source folder whose train.csv (and test.csv) is the fixture's Sudoku CSV."""
    src = tmp_path / "sudoku_src"
    src.mkdir()
    shutil.copy(OFFICIAL / "sudoku_raw" / "test.csv", src / "train.csv")
    shutil.copy(OFFICIAL / "sudoku_raw" / "test.csv", src / "test.csv")
    return src


@pytest.fixture
def maze_train_dir(tmp_path):
    src = tmp_path / "maze_src"
    src.mkdir()
    shutil.copy(OFFICIAL / "maze_raw" / "test.csv", src / "train.csv")
    return src
