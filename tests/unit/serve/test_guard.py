"""The checks made before any parsing (hrm_eval/serve/guard.py, app.body_problem), in process."""

from __future__ import annotations

import json

import pytest

from hrm_eval.serve.app import body_problem
from hrm_eval.serve.config import ServeConfig
from hrm_eval.serve.guard import MAX_JSON_DEPTH, json_depth, raw_json_response


@pytest.mark.parametrize(
    "text,depth",
    [
        ("", 0),
        ("7", 0),
        ('"[[[["', 0),  # brackets inside a string do not nest
        ('{"puzzle": "356.2..24"}', 1),
        ('{"puzzles": [{"grid": [[0, 1], [1, 0]]}]}', 5),  # the deepest legitimate request
        ('{"a": "x\\"[[[", "b": [[1]]}', 3),  # an escaped quote does not end the string
        ("[" * 1000, 1000),  # unclosed: counted all the same
        ("]]]" + "[[[", 0),  # the parser stops at the first stray `]`: what follows is never nested into
        ("[" * 40 + "]" * 40, 40),
    ],
)
def test_json_depth_known_answers(text, depth):
    assert json_depth(text) == depth == json_depth(text.encode())


def test_json_depth_agrees_with_the_parser_on_nested_data():
    for depth in (1, 2, 7, 31):
        value: object = 1
        for i in range(depth):
            value = [value] if i % 2 else {"k": value}
        assert json_depth(json.dumps(value)) == depth


def test_body_problem():
    assert body_problem(b'{"puzzle": "356.2..24.366..3422.36514312.556.4.."}') is None
    assert body_problem(b"[" * (MAX_JSON_DEPTH + 1)) == "body: not valid JSON (nested deeper than 32 levels)"
    assert body_problem(b"[" * MAX_JSON_DEPTH) is None  # not refused here: the parser says what is wrong
    assert body_problem(b'{"task": "sud\xffku6"}') == "body: not valid JSON (not UTF-8 at byte 13)"  # counted from 0
    assert body_problem('{"puzzle": "…"}'.encode("utf-16")) == "body: not valid JSON (not UTF-8 at byte 0)"


def test_raw_json_response_is_complete_http():
    raw = raw_json_response(408, "Request Timeout", "headers: not received within 2 s")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout"
    assert b"connection: close" in head and f"content-length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": "headers: not received within 2 s", "status": 408}


def test_limits_default_the_drain_to_the_request_timeout():
    assert ServeConfig(timeout_s=12).limits()["drain_timeout_s"] == 12
    assert ServeConfig(timeout_s=12, drain_timeout_s=0).limits()["drain_timeout_s"] == 0
    assert set(ServeConfig().limits()) == {
        "timeout_s",
        "drain_timeout_s",
        "header_timeout_s",
        "body_timeout_s",
        "max_connections",
        "max_queue",
        "max_request_puzzles",
        "max_body_bytes",
    }


def test_task_parser_names_deep_nesting_instead_of_crashing():
    """Outside the server too (--mode solve reads puzzles with the same parser): JSON text nested
    past the interpreter's recursion limit is a one-line error, not a RecursionError."""
    from hrm_eval.data.tasks import get_task
    from hrm_eval.utils.errors import HRMEvalError

    with pytest.raises(HRMEvalError, match=r"^sudoku6: JSON nested too deeply \(100000 levels, at most 64\)$"):
        get_task("sudoku6").parse_puzzle("[" * 100_000)
