"""The ensemble fixtures of tests/unit/ensemble/conftest.py, for the real-process tests here too
(the autouse per-test prediction cache included: CLI subprocesses inherit it)."""

from tests.unit.ensemble.conftest import _own_prediction_cache, broken_run, fixture_run  # noqa: F401 - fixtures
