"""hf:// checkpoints through real `deploy.py` processes: evaluate, solve and inspect give the local
path's numbers; hub errors are one line and exit 2 (offline, not installed, a stand-in hub that
answers 404); --push-to-hub uploads the folder byte for byte to a local stand-in of the hub's API.
The hub cache and in-process tests: tests/unit/models/test_hub.py."""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from tests.conftest import ROOT
from tests.unit.models.test_hub import COMMIT, FOLDER_COMMIT, FOLDER_REPO, LIMIT, RUN, STEP_REPO, make_hub

pytest.importorskip("huggingface_hub")  # in the test extra: CI runs these


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return make_hub(tmp_path_factory)


def _env(hub) -> dict:
    return {**os.environ, "HF_HOME": str(hub[0]), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _cli(hub, *args, env=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy.py"), *args],
        cwd=ROOT,
        env=env or _env(hub),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_cli_evaluate_solve_inspect_through_hf_match_the_local_path(hub, tmp_path):
    """evaluate, solve and inspect: the same numbers and answers as the local file."""
    common = ["--data", str(RUN / "heldout"), "--limit", LIMIT, "--device", "cpu", "--dtype", "float32"]
    for name, ref, path in (
        ("steps", f"hf://{STEP_REPO}", RUN / "step_11250"),
        ("folder", f"hf://{FOLDER_REPO}", hub[1]),
    ):
        results = {}
        for where, ckpt in (("hub", ref), ("local", str(path))):
            out = tmp_path / f"{name}-{where}"
            proc = _cli(hub, "--mode", "evaluate", "--checkpoint", ckpt, *common, "--output", str(out))
            assert proc.returncode == 0, proc.stderr
            results[where] = json.loads((out / "results.json").read_text())
        h, loc = results["hub"], results["local"]
        assert _untimed(h["aggregate_metrics"]) == _untimed(loc["aggregate_metrics"])
        assert h["provenance"]["checkpoint"]["sha256"] == loc["provenance"]["checkpoint"]["sha256"]
        assert h["provenance"]["checkpoint"]["hub"]["revision"] == (COMMIT if name == "steps" else FOLDER_COMMIT)
    solve = ["--mode", "solve", "--data", str(RUN / "raw" / "heldout.csv"), "--limit", "3", "--device", "cpu"]
    hub_solve = _cli(hub, *solve, "--checkpoint", f"hf://{STEP_REPO}")
    local_solve = _cli(hub, *solve, "--checkpoint", str(RUN / "step_11250"))
    assert hub_solve.returncode == 0, hub_solve.stderr
    assert hub_solve.stdout == local_solve.stdout
    hub_inspect = _cli(hub, "--mode", "inspect", "--checkpoint", f"hf://{STEP_REPO}/step_10000")
    local_inspect = _cli(hub, "--mode", "inspect", "--checkpoint", str(RUN / "step_10000"))
    assert hub_inspect.returncode == 0, hub_inspect.stderr
    # the same report but for where the file lies (and the rule under the title, as wide as the widest row)
    skip = lambda text: [x for x in text.splitlines() if not x.startswith(("file", "hub", "---"))]  # noqa: E731
    assert skip(hub_inspect.stdout) == skip(local_inspect.stdout)
    assert f"{STEP_REPO} at commit {COMMIT}" in hub_inspect.stdout


class _NotFound(http.server.BaseHTTPRequestHandler):
    """The hub's answer to any request about a repo that does not exist (or is private)."""

    def do_GET(self):  # noqa: N802
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("X-Error-Message", "Repository not found")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "Repository not found"}')

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def test_cli_hub_errors_are_one_line_and_exit_2(hub):
    def one_line(proc, *words):
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
        for w in words:
            assert w in lines[0], (w, lines[0])

    one_line(_cli(hub, "--mode", "inspect", "--checkpoint", "hf://sapientinc/HRM-checkpoint-ARC-2"), "HF_HUB_OFFLINE")
    one_line(_cli(hub, "--mode", "inspect", "--checkpoint", "hf://sapientinc/HRM-empty"), "no checkpoint file")
    # huggingface_hub not installed: the import fails as it would without the extra
    code = (
        "import sys; sys.modules['huggingface_hub'] = None; sys.argv = ['deploy.py'] + sys.argv[1:];"
        "import runpy; runpy.run_path('deploy.py', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--mode", "inspect", "--checkpoint", f"hf://{STEP_REPO}"],
        cwd=ROOT,
        env=_env(hub),
        capture_output=True,
        text=True,
        timeout=300,
    )
    one_line(proc, "pip install 'hrm-eval[hub]'")
    # online, the hub says the repo does not exist: a local stand-in answers as the hub does
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in _env(hub).items() if k != "HF_HUB_OFFLINE"}
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
        env["HF_HOME"] = str(hub[0] / "empty-home")
        proc = _cli(hub, "--mode", "inspect", "--checkpoint", "hf://sapientinc/no-such-model", env=env)
        one_line(proc, "hub repo 'sapientinc/no-such-model' not found")
    finally:
        server.shutdown()


class _UploadHub(http.server.BaseHTTPRequestHandler):
    """A local stand-in for the few routes of the hub's HTTP API that an upload uses (create repo,
    create branch, validate the card's YAML, preupload, commit), answering as the hub does. It
    asks for every file inline ("regular"), where the hub would take large ones through LFS."""

    received: dict = {}

    def _json(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        host = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            req = self.received["create"] = json.loads(body)
            return self._json({"url": f"{host}/{req['organization']}/{req['name']}"})
        if self.path == "/api/validate-yaml":
            self.received["card"] = json.loads(body)["content"]
            return self._json({"errors": [], "warnings": []})
        if "/branch/" in self.path:
            self.received["branch"] = self.path
            return self._json({})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._json(
                {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        if "/commit/" in self.path:
            lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
            self.received["commit"] = (self.path, lines, self.headers.get("Authorization"))
            repo = "/".join(self.path.split("/")[3:5])  # /api/models/OWNER/REPO/commit/REVISION
            url = f"{host}/{repo}/commit/{'c' * 40}"
            return self._json({"commitUrl": url, "commitOid": "c" * 40, "pullRequestUrl": None})
        return self._json({"error": "not a route of this stand-in"}, 404)

    def do_GET(self):  # noqa: N802
        self._json({"error": "not a route of this stand-in"}, 404)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_cli_export_push_to_hub_uploads_the_folder_byte_for_byte(tmp_path):
    """--push-to-hub through huggingface_hub's real upload code, against a local stand-in for the
    hub's API (HF_ENDPOINT): the repo is created private, the branch made, and the commit holds
    exactly the folder's files (card with the model-index included), sent with the token."""
    server, env = _upload_hub(tmp_path)
    out = tmp_path / "folder"
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "deploy.py"), "--mode", "export", "--checkpoint", str(RUN / "step_11250"),
             "--format", "safetensors", "--output", str(out), "--data", str(RUN / "heldout"), "--limit", LIMIT,
             "--push-to-hub", "sapientinc/HRM-sudoku6-hard", "--private", "--revision", "v1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert "pushed: http://127.0.0.1:" in proc.stdout
    got = _UploadHub.received
    assert got["create"] == {"name": "HRM-sudoku6-hard", "organization": "sapientinc", "visibility": "private",
                             "type": "model"}  # fmt: skip
    assert got["branch"] == "/api/models/sapientinc/HRM-sudoku6-hard/branch/v1"
    path, lines, auth = got["commit"]
    assert path == "/api/models/sapientinc/HRM-sudoku6-hard/commit/v1" and auth == "Bearer hf_stand_in_token"
    files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    assert all(files[name] == (out / name).read_bytes() for name in files)
    assert got["card"] == (out / "README.md").read_text() and "model-index:" in got["card"]


@pytest.mark.slow
def test_push_model_uploads_the_folder_save_model_writes(tmp_path):
    """From Python: a model in memory (from_pretrained) pushed with hrm_eval.export.push_model
    arrives as exactly the files save_model writes for it, in a real process against the stand-in."""
    from hrm_eval.export import save_model
    from hrm_eval.models import ACTModel

    server, env = _upload_hub(tmp_path)
    script = (
        "import sys; from hrm_eval.export import push_model; from hrm_eval.models import ACTModel; "
        "print(push_model(ACTModel.from_pretrained(sys.argv[1]), 'sapientinc/HRM-in-memory'))"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", script, str(RUN / "step_11250")], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("http://127.0.0.1:")
    saved = save_model(ACTModel.from_pretrained(RUN / "step_11250"), tmp_path / "saved")
    _, lines, _ = _UploadHub.received["commit"]
    files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    assert files["model.safetensors"] == (saved / "model.safetensors").read_bytes()
    assert files["README.md"] == (saved / "README.md").read_bytes()


def _upload_hub(tmp_path) -> tuple[http.server.ThreadingHTTPServer, dict]:
    """The upload stand-in serving on a free port, and the environment that points the hub there."""
    _UploadHub.received = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _UploadHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
        HF_HOME=str(tmp_path / "hf_home"),
        HF_TOKEN="hf_stand_in_token",
        OMP_NUM_THREADS="1",
    )
    return server, env


def _untimed(metrics: dict) -> dict:
    timing = {"time_per_puzzle", "wall_time_seconds", "puzzles_per_second"}
    return {k: v for k, v in metrics.items() if k not in timing}
