"""The one guarded JSON / YAML reader (issue 27): every limit refuses in one line naming where the
text came from, before Python's parsers recurse, convert or expand; real inputs read as before."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from hrm_eval.utils import guarded
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import ROOT


def refused(call, *args, match: str, **kwargs) -> str:
    with pytest.raises(HRMEvalError, match=match) as e:
        call(*args, **kwargs)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300, str(e.value)
    return str(e.value)


@pytest.mark.parametrize(
    "text, depth",
    [('{"a": [1, {"b": "[[[[{{{{"}]}', 3), ("[]", 1), ("1", 0), ('"[\\"["', 0), ("[" * 70 + "]" * 70, 70)],
)
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert guarded.json_depth(text) == depth


def test_json_limits():
    assert guarded.parse_json('{"a": [1, 2.5, -3, null]}', "x") == {"a": [1, 2.5, -3, None]}
    refused(guarded.parse_json, "[" * 100_000 + "]" * 100_000, "flag --x", match=r"^flag --x: JSON nested too deeply")
    refused(guarded.parse_json, "[1" + "0" * 5_000 + "]", "f.json", match=r"^f.json: an integer with too many digits")
    refused(guarded.parse_json, "-" + "9" * 65, "f.json", match="too many digits")
    assert guarded.parse_json("-" + "9" * 64, "f.json") == -int("9" * 64)
    refused(guarded.parse_json, "{} " * 10, "f.json", match="f.json: not valid JSON")
    refused(guarded.parse_json, "[1]", "f.json", max_bytes=2, match="more than the 2 allowed")


LAUGH_LINES = [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
BILLION_LAUGHS = "\n".join(["l0: &l0 [x, x, x, x, x, x, x, x, x, x]", *LAUGH_LINES])  # 10^9 values expanded


@pytest.mark.parametrize(
    "text, match",
    [
        ("a: " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 300)), "nested too deeply"),
        (BILLION_LAUGHS, "aliases expand to more than 100,000 values"),
        ("a: &a [*a]", "a YAML anchor refers to itself"),
        ("&a {b: *a}", "a YAML anchor refers to itself"),
        ("arch:\n  1: 2", r"mapping key '1' \(line 2\) is not a string"),
        ("on: 1", "mapping key 'on'"),
        ("? [a, b]\n: 1", "mapping key 'a collection'"),
        ("hidden_size: 1" + "0" * 5_000, r"hidden_size: an integer with too many digits \(5,001"),
        ("a: !!python/object/apply:os.system ['true']", "not valid YAML"),
        ("a: [1, 2", "not valid YAML"),
    ],
)
def test_yaml_refusals_are_one_line_and_fast(text, match):
    start = time.monotonic()
    msg = refused(guarded.parse_yaml, text, "run/all_config.yaml", match=match)
    assert msg.startswith("run/all_config.yaml")
    assert time.monotonic() - start < 5  # before: billion laughs built a 10^9-node structure


def test_yaml_that_real_configs_use_still_reads():
    text = "base: &b {x: 1, y: [1, 2]}\nc:\n  <<: *b\n  y: 3\nd: *b\ne: ~\nf: 1.0e-05\n"
    assert guarded.parse_yaml(text, "x") == {
        "base": {"x": 1, "y": [1, 2]},
        "c": {"x": 1, "y": 3},
        "d": {"x": 1, "y": [1, 2]},
        "e": None,
        "f": 1e-05,
    }
    for path in [*(ROOT / "configs").glob("*.yaml"), *(ROOT / "checkpoints").glob("*/all_config.yaml")]:
        assert guarded.read_yaml(path) == yaml.safe_load(path.read_text()), path


@pytest.mark.parametrize("kind", ["FIFO", "directory", "character device", "socket"])
def test_special_files_say_what_they_are_and_never_block(tmp_path, kind):
    path = tmp_path / "x.yaml"
    if kind == "FIFO":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    elif kind == "directory":
        path.mkdir()
    elif kind == "character device":
        path.symlink_to("/dev/zero")  # reading it would never end
    else:
        import socket

        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
    refused(guarded.read_yaml, path, "config file", match=rf"config file {path} is a {kind}.*, expected a regular file")
    refused(guarded.read_json, path, "stacker", match=rf"^stacker {path} is a {kind}")


def test_size_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:  # sparse: 100 MB declared, nothing written
        f.truncate(100 << 20)
    refused(guarded.read_yaml, path, match=r"is 104,857,600 bytes, more than the 16,777,216")
    refused(guarded.read_yaml, tmp_path / "none.yaml", "model config", match="model config not found")


def test_stacker_and_onnx_metadata_go_through_the_guard(tmp_path):
    from onnx import ModelProto

    from hrm_eval.ensemble.strategies import load_stacker_file
    from hrm_eval.export.onnx import onnx_config

    (tmp_path / "stacker.json").write_text('{"w": ' + "[" * 5_000 + "]" * 5_000 + "}")
    refused(load_stacker_file, str(tmp_path / "stacker.json"), match="stacker.json: JSON nested too deeply")
    (tmp_path / "stacker.json").write_text("[1, 2]")
    refused(load_stacker_file, str(tmp_path / "stacker.json"), match="expected a JSON object, got list")

    proto = ModelProto()
    prop = proto.metadata_props.add()
    prop.key, prop.value = "hrm_eval_config", '{"a": ' * 10_000 + "1" + "}" * 10_000
    refused(onnx_config, "m.onnx", proto, match="m.onnx: the hrm_eval_config metadata: JSON nested too deeply")
    fields = dict(seq_len=36, vocab_size=8, H_cycles=2, L_cycles=2, L_layers=1, H_layers=1, hidden_size=64)
    fields |= dict(num_heads=4, expansion=4, halt_max_steps=4, rms_norm_eps=float("nan"))
    import json

    prop.value = json.dumps(fields)
    msg = refused(onnx_config, Path("m.onnx"), proto, match="rms_norm_eps nan: Input should be a finite number")
    assert "validation error for" not in msg  # before: "1 validation error for ModelConfig", no field
