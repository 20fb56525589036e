"""Config files: one reader (YAML/JSON, one-line errors with the line number), the schema picked
by content, one formatter for validation errors, and the mode config models' defaults."""

from __future__ import annotations

import os
import threading

import pytest
from pydantic import ValidationError

from hrm_eval.config import load_config
from hrm_eval.ensemble.config import CompareConfig, EnsembleConfig
from hrm_eval.evaluation.config import EvalConfig
from hrm_eval.resources import (
    BUNDLED_MODELS,
    bundled_model_for,
    bundled_run,
    bundled_runs,
    config_file,
    data_home,
    find,
    task_models,
)
from hrm_eval.training.config import TrainConfig
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.errors import HRMEvalError
from hrm_eval.utils.guarded import read_json
from hrm_eval.utils.paths import LOCK_NAME, OutputLock, check_writable_dir, default_output
from hrm_eval.utils.validation import read_yaml, validate_config, validation_error_line
from tests.conftest import CLASSIC_9X9, HRM_FIXTURES, ROOT, TRM_FIXTURES

RUN_CONFIGS = [
    bundled_run() / "all_config.yaml",
    HRM_FIXTURES["rope_f32"] / "all_config.yaml",
    TRM_FIXTURES["attn_f32"] / "all_config.yaml",
    ROOT / "configs" / "train_sudoku6.yaml",
]


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=["bundled", "public_hrm", "public_trm", "train_sudoku6"])
def test_run_configs_load_as_training_configs(path):
    cfg = load_config(path)
    assert isinstance(cfg, TrainConfig) and cfg.arch["name"]
    if "official_trm" in str(path):
        assert cfg.data_path == "data/arc-tiny"  # the public TRM `data_paths: [one]`


def test_eval_config_loads_as_eval_config_and_a_run_config_is_not_one():
    assert isinstance(load_config(ROOT / "configs" / "eval_config.yaml"), EvalConfig)
    with pytest.raises(HRMEvalError, match="training/run config"):
        load_config(bundled_run() / "all_config.yaml", EvalConfig)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("device: cpu\nbatch_size: 8\nlimit: [3\n")
    with pytest.raises(HRMEvalError) as e:
        read_yaml(path)
    assert str(e.value).startswith(f"{path}:4: not valid YAML") and "\n" not in str(e.value)
    path.write_text("- a\n- b\n")
    with pytest.raises(HRMEvalError, match="expected a mapping"):
        read_yaml(path)
    with pytest.raises(HRMEvalError, match="config file not found"):
        read_yaml(tmp_path / "missing.yaml")


def test_malformed_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(HRMEvalError) as e:
        read_json(path)
    assert str(e.value).startswith(f"{path}:4: not valid JSON")
    path.write_text('{"a": [1, 2]}')
    assert read_json(path) == {"a": [1, 2]}


def test_validation_error_is_one_line_naming_field_and_value():
    with pytest.raises(ValidationError) as e:
        EvalConfig(checkpoint="c", data_path="d", batch_size=0)
    assert validation_error_line(e.value) == "batch_size 0: Input should be greater than or equal to 1"
    assert validation_error_line(e.value, {"batch_size": "--batch-size"}).startswith("--batch-size 0: ")
    with pytest.raises(ValidationError) as e:
        EvalConfig(data_path="d")
    assert validation_error_line(e.value) == "checkpoint: Field required"
    with pytest.raises(HRMEvalError, match=r"c\.yaml: dtype 'float8': Input should be"):
        validate_config({"checkpoint": "c", "data_path": "d", "dtype": "float8"}, EvalConfig, "c.yaml")


def test_one_batch_size_default_for_every_evaluation_path():
    assert DEFAULT_BATCH_SIZE == 256
    for schema in (EvalConfig, EnsembleConfig, CompareConfig):
        assert schema.model_fields["batch_size"].default == DEFAULT_BATCH_SIZE, schema.__name__
    assert "batch_size" not in read_yaml(ROOT / "configs" / "eval_config.yaml")  # not restated


def test_ensemble_and_compare_share_one_member_cache_by_default():
    assert EnsembleConfig().cache_dir is CompareConfig().cache_dir is None  # the API's default_cache_dir()


# ---- resources -----------------------------------------------------------------------------------
def test_data_home_lookup_order(tmp_path, monkeypatch):
    monkeypatch.delenv("HRM_EVAL_HOME", raising=False)
    assert data_home() == ROOT  # a checkout: the folder holding hrm_eval/
    assert config_file("eval_config.yaml") == ROOT / "configs" / "eval_config.yaml"
    assert bundled_run() == ROOT / "checkpoints" / "sudoku6-hard-hrm"  # the default model
    assert bundled_runs()[:2] == [bundled_run(), ROOT / "checkpoints" / "sudoku6-hrm"]  # then sudoku9-hrm, once shipped
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "eval_config.yaml").write_text("checkpoint: x\n")
    monkeypatch.setenv("HRM_EVAL_HOME", str(tmp_path))
    assert data_home() == tmp_path and bundled_run() == tmp_path / "checkpoints" / "sudoku6-hard-hrm"
    monkeypatch.setenv("HRM_EVAL_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(HRMEvalError, match="HRM_EVAL_HOME"):
        data_home()


def test_each_task_has_one_bundled_model_listed_before_it_is_shipped(tmp_path, monkeypatch):
    """The 9x9 model is listed (issue 28) but counts only once its folder holds a checkpoint: until
    then an 81-cell puzzle gets a one-line error naming the folder and --checkpoint."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "eval_config.yaml").write_text("checkpoint: x\n")
    monkeypatch.setenv("HRM_EVAL_HOME", str(tmp_path))
    assert [(m.name, m.task) for m in task_models()] == [("sudoku6-hard-hrm", "sudoku6"), ("sudoku9-hrm", "sudoku")]
    assert not any(m.present for m in BUNDLED_MODELS) and bundled_runs() == []
    absent = r"no bundled model for 9x9 Sudoku \(81 cells\) yet .*sudoku9-hrm.*--checkpoint"
    with pytest.raises(HRMEvalError, match=absent):
        bundled_model_for(CLASSIC_9X9)
    (tmp_path / "checkpoints" / "sudoku9-hrm").mkdir(parents=True)
    assert bundled_runs() == [tmp_path / "checkpoints" / "sudoku9-hrm"]  # a folder: never a training output
    with pytest.raises(HRMEvalError, match="yet"):  # but no checkpoint in it: not a model yet
        bundled_model_for(CLASSIC_9X9)
    (tmp_path / "checkpoints" / "sudoku9-hrm" / "step_10").write_bytes(b"")
    assert bundled_model_for(CLASSIC_9X9).name == bundled_model_for(task="sudoku").name == "sudoku9-hrm"
    with pytest.raises(HRMEvalError, match="yet"):
        bundled_model_for("356.2..24.366..3422.36514312.556.4..")  # 6x6: its model is not in this home
    with pytest.raises(HRMEvalError, match=r"fits none of the bundled models \(6x6 Sudoku: 36 cells, 9x9 Sudoku: 81"):
        bundled_model_for("1234")
    with pytest.raises(HRMEvalError, match="no bundled model for task maze"):
        bundled_model_for("1234", task="maze")


def test_find_tries_the_working_directory_then_the_data_home(tmp_path, monkeypatch):
    monkeypatch.delenv("HRM_EVAL_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find("checkpoints/sudoku6-hrm") == ROOT / "checkpoints" / "sudoku6-hrm"
    (tmp_path / "checkpoints" / "sudoku6-hrm").mkdir(parents=True)
    assert find("checkpoints/sudoku6-hrm") == tmp_path.joinpath("checkpoints/sudoku6-hrm").relative_to(tmp_path)
    assert find("no/such/thing") == tmp_path.joinpath("no/such/thing").relative_to(tmp_path)


# ---- output paths --------------------------------------------------------------------------------
def test_check_writable_dir(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HRMEvalError, match="existing file"):
        check_writable_dir(tmp_path / "f")
    with pytest.raises(HRMEvalError, match="is a file"):
        check_writable_dir(tmp_path / "f" / "a" / "b")
    assert check_writable_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_default_output_is_new_each_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = default_output("evaluate", "checkpoints/sudoku6-hrm", "checkpoints/sudoku6-hrm/data")
    assert first.parent == tmp_path.joinpath("outputs/evaluate").relative_to(tmp_path)
    assert first.name.startswith("sudoku6-hrm-data-")
    first.mkdir(parents=True)
    second = default_output("evaluate", "checkpoints/sudoku6-hrm", "checkpoints/sudoku6-hrm/data")
    assert second != first and not second.exists()


def test_output_lock_excludes_a_second_holder_and_cleans_up(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
        errors = []

        def second():
            try:
                with OutputLock(out):
                    pass
            except HRMEvalError as e:
                errors.append(str(e))

        t = threading.Thread(target=second)  # flock locks belong to open files: a second open conflicts
        t.start()
        t.join()
        assert len(errors) == 1 and "another run" in errors[0]
    assert not out.exists()  # made for the run, nothing written: removed again
    out.mkdir()
    with OutputLock(out):
        (out / "results.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
