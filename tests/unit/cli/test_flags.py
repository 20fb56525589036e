"""Flags built from the config models' fields (`setting`, `add_flags`): a setting is declared
once, and the API, the CLI, the ensemble and compare share one default per setting."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from hrm_eval.cli import MODES
from hrm_eval.cli.base import mode_parser, passed_on
from hrm_eval.ensemble.config import CompareConfig, EnsembleConfig
from hrm_eval.evaluation.config import EvalConfig
from hrm_eval.utils.config import DEFAULT_BATCH_SIZE
from hrm_eval.utils.errors import HRMEvalError

# every flag from the config model
DERIVED = ("evaluate", "inspect", "score", "ensemble", "compare", "solve", "play", "export", "build-data", "generate")


@pytest.mark.parametrize("name", DERIVED)
def test_every_field_of_a_derived_mode_is_a_flag_named_from_it(name):
    mode = MODES[name]
    parser = mode_parser(mode)
    flags = {a.dest: a.option_strings for a in parser._actions if a.option_strings}
    assert mode.schema is not None
    assert set(mode.schema.model_fields) <= set(flags), set(mode.schema.model_fields) - set(flags)
    renamed = {
        "data_path": "--data",
        "output_dir": "--output",
        "output_format": "--format",
        "progress": "--no-progress",
    }
    renamed |= {"model_config_path": "--model-config", "arch_overrides": "--arch", "plots": "--no-plots"}
    for field in mode.schema.model_fields:
        assert flags[field][0] == renamed.get(field, "--" + field.replace("_", "-")), field


def test_flag_facts_come_from_the_field():
    parser = mode_parser(MODES["evaluate"])
    actions = {a.dest: a for a in parser._actions}
    assert actions["halting"].choices == ("fixed", "adaptive", "threshold") and actions["sweep"].const is True
    assert actions["dtype"].choices == ("auto", "float32", "bfloat16", "float16")
    assert actions["batch_size"].type is int and actions["noise"].type is float
    assert actions["resume"].nargs == "?" and actions["resume"].const is True
    assert parser.parse_args(["--resume"]).resume is True and parser.parse_args(["--no-progress"]).progress is False
    assert parser.parse_args(["--arch", "a=1", "--arch", "b=x"]).arch_overrides == {"a": 1, "b": "x"}
    assert "--run-dir" in {a.dest: a for a in mode_parser(MODES["ensemble"])._actions}["run"].option_strings
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--resume", "--overwrite"])  # one interrupted-run choice
    assert e.value.code == 2


def test_solve_serve_and_play_flags_come_from_their_fields():
    solve = mode_parser(MODES["solve"])
    assert solve.parse_args(["--puzzle", "a", "--puzzle", "b"]).puzzle == ["a", "b"]  # repeatable
    assert {a.dest: a for a in solve._actions}["halting"].choices == ("fixed", "adaptive", "threshold")
    serve = mode_parser(MODES["serve"])
    args = serve.parse_args(["--checkpoint", "a", "--checkpoint", "b", "--timeout", "3", "--drain-timeout", "1"])
    assert (args.checkpoints, args.timeout_s, args.drain_timeout_s) == (["a", "b"], 3.0, 1.0)
    actions = {a.dest: a for a in serve._actions}
    assert actions["halting"].choices == ("fixed", "adaptive") and actions["port"].type is int
    assert actions["max_connections"].help == "open connections before 503 (default: 1024)"  # from the field
    play = mode_parser(MODES["play"])
    assert play.parse_args(["--difficulty", "3", "5"]).difficulty == [3, 5]
    with pytest.raises(SystemExit) as e:
        play.parse_args(["--difficulty", "3", "x"])  # each value an int, refused by argparse
    assert e.value.code == 2


def test_train_flags_of_config_fields_come_from_train_config():
    """--mode train takes a few TrainConfig fields as flags (from the fields); --config, --set,
    --resume | --overwrite and --no-progress steer the run and stay the CLI's own."""
    from hrm_eval.training.config import TrainConfig

    parser = mode_parser(MODES["train"])
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    spelled = {"data_path": "--data", "checkpoint_path": "--output", "max_steps": "--max-steps", "device": "--device"}
    for field, flag in spelled.items():
        assert actions[field].option_strings == [flag], field
        assert actions[field].help == TrainConfig.model_fields[field].description, field
    assert actions["max_steps"].type is int
    args = parser.parse_args(["--config", "c.yaml", "--set", "a.b=1", "--set", "lr=0.5", "--max-steps", "3"])
    assert args.overrides == {"a.b": 1, "lr": 0.5} and args.max_steps == 3 and "device" not in vars(args)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--config", "c.yaml", "--resume", "--overwrite"])
    assert e.value.code == 2


def test_simple_evaluate_reads_its_settings_from_eval_config():
    from hrm_eval.evaluation.run import evaluate_config, simple_evaluate

    assert set(inspect.signature(simple_evaluate).parameters) == {
        "checkpoint", "data", "config", "model_config", "formats", "dist", "settings"
    }  # fmt: skip
    keywords = evaluate_config(Path("c"), "d", None, {"limit": 3, "arch_overrides": None, "halting": "adaptive"})
    config = evaluate_config(None, None, EvalConfig(checkpoint="c", data_path="d", limit=3, halting="adaptive"), {})
    assert keywords == config and keywords.batch_size == DEFAULT_BATCH_SIZE and keywords.arch_overrides == {}
    assert evaluate_config(None, None, config, {"limit": 5, "output_dir": Path("o")}).limit == 5  # keywords win
    with pytest.raises(TypeError, match="unexpected keyword argument 'limt'"):
        evaluate_config("c", "d", None, {"limt": 3})
    with pytest.raises(HRMEvalError, match="^limit 0: Input should be greater than or equal to 1$"):
        evaluate_config("c", "d", None, {"limit": 0})


def _defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_one_default_per_setting_for_api_cli_ensemble_and_compare():
    from hrm_eval.compare import compare_checkpoints
    from hrm_eval.ensemble.settings import EnsembleSettings
    from hrm_eval.members.predictions import member_predictions, predict

    # the CLI's own defaults: a new output folder per run (the API writes none), --arch as a flag
    api_own = {"output_dir", "arch_overrides"}
    ensemble = {f.name: f.default for f in dataclasses.fields(EnsembleSettings)}
    for name, default in ensemble.items():
        if name in EnsembleConfig.model_fields and name not in api_own:
            assert default == EnsembleConfig.model_fields[name].default, name
    for name, default in _defaults(compare_checkpoints).items():
        if name in CompareConfig.model_fields and name not in api_own:
            assert default == CompareConfig.model_fields[name].default, name
    assert _defaults(predict)["batch_size"] == _defaults(member_predictions)["batch_size"] == DEFAULT_BATCH_SIZE


def test_what_compare_and_ensemble_get_is_read_from_their_config():
    from hrm_eval.compare import compare_checkpoints
    from hrm_eval.ensemble.settings import EnsembleSettings

    cfg = CompareConfig(batch_size=7, plots=False, cache_dir="c")
    given = passed_on(cfg, compare_checkpoints)
    assert given["batch_size"] == 7 and given["plots"] is False and given["cache_dir"] == "c"
    assert not {"output_dir", "device", "wandb", "log_level"} & set(given)
    given = passed_on(EnsembleConfig(strategy="vote", tta=2, batch_size=9), EnsembleSettings)
    settings = EnsembleSettings.build(None, **given, device="cpu")
    assert (settings.strategy, settings.tta, settings.batch_size, settings.device) == ("vote", 2, 9, "cpu")
