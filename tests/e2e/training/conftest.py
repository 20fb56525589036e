"""The training fixtures of tests/unit/training/conftest.py, for the tests here too."""

from tests.unit.training.conftest import sudoku4_data  # noqa: F401 - a fixture
