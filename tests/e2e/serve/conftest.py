"""A real server for the serve tests: `deploy.py --mode serve --port 0` as a subprocess, talked
to over real HTTP on localhost. One server for all of them (it takes seconds to start)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

KEY = "test-key-7c1f"
ISSUE_PUZZLE = "356.2..24.366..3422.36514312.556.4.."  # the issue's example: a bundled test puzzle
ISSUE_ANSWER = "356124124536615342243651431265562413"
# Small limits so every error code can be reached with small requests.
MAX_BATCH, MAX_QUEUE, MAX_BODY = 16, 64, 8192
HEADER_TIMEOUT_S = BODY_TIMEOUT_S = 2  # slow clients are cut off quickly in the tests
MAX_CONNECTIONS = 100
STARTUP_S = 240  # a loaded 2-core machine needs a while to import torch and load the model


class Server:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.host_port = ("", 0)
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy.py"), "--mode", "serve", "--port", "0", *args],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            found = re.search(r" on (http://\S+)", self.log.read_text())
            if found:
                host, port = re.match(r"http://(.+):(\d+)$", found.group(1)).groups()  # type: ignore[union-attr]
                self.host_port = (host, int(port))
                return found.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()}")
            time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError(f"no URL line within {STARTUP_S} s:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGINT, wait_s: float = 30) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    s = Server(
        [
            "--api-key",
            KEY,
            "--dtype",
            "float32",  # the same numbers on every CPU kind (auto picks bf16 on AMX machines)
            "--max-batch",
            str(MAX_BATCH),
            "--max-queue",
            str(MAX_QUEUE),
            "--max-request-puzzles",
            str(MAX_QUEUE),
            "--max-body-bytes",
            str(MAX_BODY),
            "--batch-wait-ms",
            "20",
            "--header-timeout",
            str(HEADER_TIMEOUT_S),
            "--body-timeout",
            str(BODY_TIMEOUT_S),
            "--max-connections",
            str(MAX_CONNECTIONS),
        ],
        tmp_path_factory.mktemp("server") / "server.log",
    )
    yield s
    assert s.stop() == 0, s.log.read_text()
    assert "Traceback" not in s.log.read_text(), s.log.read_text()


@pytest.fixture(scope="session")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
        yield c


def stats(client: httpx.Client) -> dict:
    r = client.get("/v1/stats")
    assert r.status_code == 200, r.text
    return r.json()


def wait_idle(client: httpx.Client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while stats(client)["queue"]["pending"]:
        assert time.monotonic() < deadline, "the queue never drained"
        time.sleep(0.05)
