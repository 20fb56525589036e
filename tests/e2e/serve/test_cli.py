"""`--mode serve` mistakes: one line on stderr, exit status 2, before anything listens."""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from hrm_eval.serve.config import ServeConfig
from tests.conftest import run_cli


def test_config_limits():
    with pytest.raises(ValidationError, match="max_request_puzzles 300 exceeds max_queue 200"):
        ServeConfig(max_queue=200, max_request_puzzles=300)
    with pytest.raises(ValidationError, match="api_key must not be empty"):
        ServeConfig(api_key=" ")
    assert ServeConfig().local_only and not ServeConfig(host="0.0.0.0").local_only
    with pytest.raises(ValidationError, match="budget 100 exceeds max_budget 64"):
        ServeConfig(scaling="verify", budget=100, max_budget=64)
    keyed = ServeConfig(api_key="s3cret")
    assert keyed.api_key == "s3cret" and "s3cret" not in repr(keyed) and "api_key" not in keyed.model_dump()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,message",
    [
        (["--port", "70000"], "error: --port 70000: Input should be less than or equal to 65535"),
        (["--max-batch", "0"], "error: --max-batch 0: Input should be greater than or equal to 1"),
        (["--max-budget", "0"], "error: --max-budget 0: Input should be greater than or equal to 1"),
        # the default --max-budget is the model's (8 x halt_max_steps = 64 here)
        (["--scaling", "verify", "--budget", "100"], "error: --budget 100 exceeds --max-budget 64"),
    ],
)
def test_bad_flags(args, message):
    r = run_cli("--mode", "serve", *args, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(message), r.stderr
    assert "Traceback" not in r.stderr and "serving" not in r.stdout


@pytest.mark.slow
def test_busy_port_and_public_host_warning():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_cli("--mode", "serve", "--port", str(port), timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: --port {port}: cannot listen on 127.0.0.1:{port} (Address already in use)"
    r = run_cli("--mode", "serve", "--host", "0.0.0.0", "--port", "0", "--checkpoint", "no/such/run", timeout=300)
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("warning: --host 0.0.0.0 accepts connections from other machines and no --api-key")
    assert r.returncode == 2 and lines[-1].startswith("error: ")
