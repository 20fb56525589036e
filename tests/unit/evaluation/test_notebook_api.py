"""The notebook API of the user's design, run as written (only the paths changed), against
the CLI path's numbers; results as DataFrames; per_puzzle.csv; loading errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from hrm_eval.evaluation import accumulator as evaluator_module
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import ROOT, SUDOKU_BUILT, run_main

RUN = ROOT / "checkpoints" / "sudoku6-hrm"
DATA = RUN / "data"
LIMIT = 12


@pytest.fixture(scope="module")
def design_results(tmp_path_factory):
    """The design's example, paths changed: the config file is a copy of the bundled one with
    a small limit, so that the example's evaluate(dataset) runs in seconds."""
    config_file = tmp_path_factory.mktemp("cfg") / "eval_config.yaml"
    settings = yaml.safe_load((ROOT / "configs" / "eval_config.yaml").read_text())
    # the bundled config names the default model (sudoku6-hard-hrm); this example uses the first one
    paths = {"checkpoint": str(RUN), "data_path": str(DATA)}
    config_file.write_text(yaml.safe_dump(settings | paths | {"limit": LIMIT, "progress": False}))
    path, device = RUN, "cpu"

    from hrm_eval import Evaluator, HRMConfig, HRMModel, load_checkpoint, load_config, open_dataset

    dataset = open_dataset(DATA)
    # --- the design, as written ---
    config = load_config(config_file)
    model = HRMModel(HRMConfig.from_yaml_config(config))
    checkpoint = load_checkpoint(path)
    model.load_from_checkpoint(checkpoint)
    evaluator = Evaluator(model, device, config)
    results = evaluator.evaluate(dataset)
    # ---
    return results, checkpoint


def test_design_example_matches_simple_evaluate(design_results):
    from hrm_eval import simple_evaluate

    results, _ = design_results
    cli = simple_evaluate(RUN, DATA, limit=LIMIT, dtype=None, progress=False)  # the checkpoint's own dtype
    frame = results.to_pandas()
    assert len(frame) == LIMIT and results.aggregate_metrics["total_puzzles"] == LIMIT
    want = cli["per_puzzle_metrics"]
    assert frame["answer"].tolist() == [r["answer"] for r in want]
    assert frame["solved"].tolist() == [r["solved"] for r in want]
    assert frame["q_halt_logit"].tolist() == pytest.approx([r["q_halt_logit"] for r in want], rel=1e-5)
    assert results.aggregate_metrics["exact_accuracy"] == cli["aggregate_metrics"]["exact_accuracy"]
    # the task was detected from the dataset: answers verified and decoded as board text
    assert results.aggregate_metrics["verified_solve_rate"] == cli["aggregate_metrics"]["verified_solve_rate"]
    assert all(len(a) == 36 and set(a) <= set("123456") for a in frame["answer"])
    assert frame["puzzle"].str.contains(".", regex=False).all()  # inputs have blanks


def test_to_pandas_and_summary(design_results):
    results, _ = design_results
    frame = results.to_pandas()
    assert frame["first_correct_step"].dtype == "Int64"
    solved = frame[frame["solved"]]
    assert (solved["step_efficiency"] == solved["first_correct_step"] / solved["num_steps"]).all()
    summary = results.summary()
    assert summary.index.name == "metric" and list(summary.columns) == ["value"]
    assert summary.loc["exact_accuracy", "value"] == frame["solved"].mean()
    assert summary.loc["total_puzzles", "value"] == LIMIT
    at_halt = results.q_value_analysis["calibration"]["at_halt"]
    assert summary.loc["q_halt_brier", "value"] == at_halt["brier"]
    assert summary.loc["step_efficiency", "value"] == pytest.approx(solved["step_efficiency"].mean(), rel=1e-12)


def test_evaluator_takes_the_inner_model_without_a_config(design_results):
    from hrm_eval import Evaluator, open_dataset

    results, checkpoint = design_results
    inner = checkpoint.model.inner  # what HRMModel(config) builds
    again = Evaluator(inner, progress=False).evaluate(open_dataset(DATA), limit=4)
    assert again.aggregate_metrics["total_puzzles"] == 4
    assert "answer" not in again.per_puzzle_metrics[0]  # no task named: tokens only, no natural form
    assert [r["solved"] for r in again.per_puzzle_metrics] == results.to_pandas()["solved"][:4].tolist()


def test_load_from_checkpoint_refuses_another_architecture(design_results):
    from hrm_eval import HRMConfig, HRMModel

    _, checkpoint = design_results
    other = HRMModel(HRMConfig.from_yaml_config(RUN / "all_config.yaml", seq_len=36, vocab_size=8, H_cycles=3))
    with pytest.raises(HRMEvalError, match=r"H_cycles is 3 in this model but 2 in .*step_3750"):
        other.load_from_checkpoint(checkpoint)
    with pytest.raises(HRMEvalError, match="seq_len: Field required"):
        HRMConfig.from_yaml_config(RUN / "all_config.yaml", vocab_size=8)


def test_load_checkpoint_data_argument():
    from hrm_eval import load_checkpoint, open_dataset

    assert load_checkpoint(RUN, data=DATA).config.seq_len == 36
    assert load_checkpoint(RUN, data=open_dataset(DATA)).config.vocab_size == 8
    with pytest.raises(HRMEvalError, match="data not found"):
        load_checkpoint(RUN, data=ROOT / "no-such-data")
    with pytest.raises(HRMEvalError, match="vocab_size mismatch: .* 8 tokens .* vocab_size is 11"):  # 9x9 data
        load_checkpoint(RUN, data=SUDOKU_BUILT)


def test_dataset_opening_is_exported_from_data():
    import hrm_eval
    import hrm_eval.data
    from hrm_eval.evaluation import run

    assert hrm_eval.data.open_dataset is hrm_eval.open_dataset
    assert not hasattr(run, "open_dataset")  # one home: the re-export for earlier releases is gone
    assert hrm_eval.data.resolve_task(None, hrm_eval.data.open_dataset(DATA)).name == "sudoku6"


def test_records_over_the_byte_cap_stay_in_the_file(tmp_path, monkeypatch, design_results):
    from hrm_eval import Evaluator, open_dataset

    _, checkpoint = design_results
    monkeypatch.setattr(evaluator_module, "RECORDS_IN_RESULTS_BYTES", 2000)  # ~3 records
    result = Evaluator(checkpoint.model, progress=False).evaluate(
        open_dataset(DATA), limit=8, records_path=tmp_path / "per_puzzle.jsonl"
    )
    assert result.per_puzzle_metrics is None
    frame = result.to_pandas()  # read back from the file
    assert frame["example_index"].tolist() == list(range(8))


def test_cli_format_csv(tmp_path, capsys):
    out = tmp_path / "out"
    p = run_main(capsys, "--mode", "evaluate", "--limit", "6", "--format", "csv", "--output", str(out), "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "step efficiency (solved)" in p.stdout and "Q calibration at halt" in p.stdout
    table = pd.read_csv(out / "per_puzzle.csv", dtype={"puzzle_id": str})
    records = json.loads((out / "results.json").read_text())["per_puzzle_metrics"]
    assert len(table) == 6
    assert table["answer"].astype(str).tolist() == [r["answer"] for r in records]
    assert [json.loads(x) for x in table["solved_by_step"]] == [r["solved_by_step"] for r in records]
    bad = run_main(capsys, "--mode", "evaluate", "--format", "xml")
    assert bad.returncode == 2 and "--format" in bad.stderr and "Traceback" not in bad.stderr
