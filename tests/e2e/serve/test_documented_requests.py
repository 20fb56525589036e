"""The README's Serve section, as a reader runs it: `python deploy.py --mode serve` (on a free
port instead of 8000, which another test or program may hold), then every `curl` line of the
section's shell blocks exactly as written but for the port, in a real shell. Each must exit 0
with an answer that is not an error; where the README shows the answer (a `# {...}` comment
under the command), the answer's facts must be what it shows.

Not run: the stream request whose body is the placeholder `{"puzzle": "..."}`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT, fenced_blocks
from tests.e2e.serve.conftest import Server

pytestmark = pytest.mark.slow
# Facts a shown answer must match exactly (measured equal with --dtype auto, bf16 on this AVX-512
# BF16 machine, and with float32). Left out: latency_ms / queue_ms (timings) and
# q_halt_probability, compared within 0.01 instead: `--dtype auto` computes in bf16 on CPUs
# where bf16 is faster, and the probability moves in its fourth decimal with the dtype
# (0.998675 in bf16 against the shown 0.998563).
EXACT = ("task", "answer", "verified", "steps", "model")
EXACT += ("selected_by", "budget", "attempts", "act_steps_total", "solved_at_attempt")  # with a budget


def documented_requests() -> list[tuple[str, dict | None]]:
    """(curl command line, the answer the README shows under it or None) in the Serve section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Serve\n", 1)[1].split("\n## ", 1)[0]
    found: list[tuple[str, dict | None]] = []
    for block in fenced_blocks(section, "bash"):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            i += 1
            if not line.startswith("curl "):
                continue
            while line.endswith("\\"):  # continuation lines
                line = line[:-1].rstrip() + " " + lines[i].strip()
                i += 1
            shown = []  # "# {...}" and its "#  ..." continuation lines
            while i < len(lines) and lines[i].startswith("# {" if not shown else "#  "):
                shown.append(lines[i][1:].strip())
                i += 1
            answer = json.loads("".join(shown).replace(",...}", "}")) if shown else None
            found.append((re.sub(r"\s+#\s.*$", "", line), answer))  # without its trailing comment
    return found


def test_the_serve_section_shows_requests_and_answers():
    requests = documented_requests()
    assert len(requests) >= 12
    assert sum(answer is not None for _, answer in requests) >= 2


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl, as the README's commands do")
def test_documented_requests_run_as_written(tmp_path):
    server = Server([], tmp_path / "server.log")  # `python deploy.py --mode serve`, on a free port
    host, port = server.host_port
    try:
        for command, shown in documented_requests():
            if '"puzzle": "..."' in command:
                continue  # the placeholder body
            line = command.replace("localhost:8000", f"{host}:{port}")
            proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"{command}\n{proc.stderr}"
            assert proc.stdout, command
            assert not re.search(r'"status": ?5\d\d', proc.stdout), f"{command}\n{proc.stdout}"
            if shown is None:
                continue
            got = json.loads(proc.stdout)
            for key in EXACT:
                if key in shown:
                    assert got[key] == shown[key], f"{command}: {key} {got[key]!r}, the README shows {shown[key]!r}"
            assert got["q_halt_probability"] == pytest.approx(shown["q_halt_probability"], abs=0.01)
    finally:
        assert server.stop() == 0, server.log.read_text()
