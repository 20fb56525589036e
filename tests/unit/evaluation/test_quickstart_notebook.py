"""examples/quickstart.ipynb: every code cell runs, in order, in one namespace (no Jupyter
needed: the notebook is JSON), as Jupyter would run it from examples/."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
LIMIT = 16  # the notebook's own LIMIT is for people; a test needs seconds


def code_cells() -> list:
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")  # committed clean
    return cells


@pytest.mark.slow
def test_quickstart_cells_run_in_order(monkeypatch):
    monkeypatch.chdir(ROOT / "examples")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    cells = code_cells()
    namespace: dict = {"__name__": "__main__"}
    exec(compile(cells[0], "quickstart cell 1", "exec"), namespace)
    assert namespace["ROOT"].resolve() == ROOT.resolve()  # found the repository from examples/
    namespace["LIMIT"] = LIMIT
    for i, cell in enumerate(cells[1:], start=2):
        exec(compile(cell, f"quickstart cell {i}", "exec"), namespace)
    results, table = namespace["results"], namespace["table"]
    assert results.aggregate_metrics["total_puzzles"] == LIMIT
    assert isinstance(namespace["per_puzzle"], pd.DataFrame) and len(namespace["per_puzzle"]) == LIMIT
    assert len(table) == LIMIT and set(namespace["failures"].index) == set(table.index[~table["solved"]])
    steps = namespace["steps"]  # first-right and halting step counts cover every solved puzzle
    assert steps["first right"].sum() == steps["halted"].sum() == int(table["solved"].sum())
    assert list(namespace["by_step"].index) == list(range(1, len(namespace["by_step"]) + 1))
    assert namespace["reliability"]["count"].sum() == LIMIT
    # the notebook's rule check agrees with the task's verifier on every answer
    for _, row in table.iterrows():
        assert (namespace["rule_breaks"](row["answer"]) == []) == bool(row["verified"])
    if namespace.get("plt") is not None:
        namespace["plt"].close("all")
