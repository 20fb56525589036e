"""hf://OWNER/REPO[@REVISION][/PATH] checkpoints, offline (HF_HUB_OFFLINE=1) against a hub cache
laid out as huggingface_hub lays it out (refs/main, snapshots/<commit>/ as links to blobs/),
made here from the bundled model under repo names like the public ones. huggingface_hub's own
code resolves every reference: the same files, so exactly the local path's numbers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from hrm_eval.compare import compare_checkpoints
from hrm_eval.evaluation.provenance import checkpoint_record
from hrm_eval.export.folder import write_model_folder
from hrm_eval.inference.checkpoint import load_checkpoint
from hrm_eval.members.predictions import CACHE_ENV
from hrm_eval.models.hub import hub_origin, parse
from hrm_eval.utils.errors import HRMEvalError
from tests.conftest import ROOT

pytest.importorskip("huggingface_hub")  # in the test extra: CI runs these

RUN = ROOT / "checkpoints" / "sudoku6-hard-hrm"
STEP_REPO = "sapientinc/HRM-checkpoint-sudoku6"  # several step_<N> files and all_config.yaml
FOLDER_REPO = "alphaXiv/hrm-model-sudoku6"  # a model folder: config.json + model.safetensors
SERIES_REPO = "ThomasHeim/HRM-Reproduction-Checkpoints"  # runs in folders of the repo
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FOLDER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
LIMIT = "16"


def fake_hub_repo(cache: Path, repo_id: str, files: dict, commit: str) -> None:
    """A repo in huggingface_hub's cache layout: blobs named by content hash, the snapshot's
    files as relative links to them, and refs/main naming the commit."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for name, src in files.items():
        data = Path(src).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return make_hub(tmp_path_factory)


def make_hub(tmp_path_factory):
    """HF_HOME with the two repos (and one without a checkpoint); the local model folder too."""
    home = tmp_path_factory.mktemp("hf_home")
    folder = tmp_path_factory.mktemp("export") / "sudoku6-hard"
    write_model_folder(load_checkpoint(RUN / "step_11250"), folder)
    cache = home / "hub"
    steps = {f"step_{s}": RUN / f"step_{s}" for s in (10000, 11250)}
    fake_hub_repo(cache, STEP_REPO, {**steps, "all_config.yaml": RUN / "all_config.yaml"}, COMMIT)
    fake_hub_repo(cache, FOLDER_REPO, {n: folder / n for n in ("config.json", "model.safetensors")}, FOLDER_COMMIT)
    fake_hub_repo(cache, "sapientinc/HRM-empty", {"README.md": RUN / "README.md"}, COMMIT)
    series = {f"sudoku6/step_{s}": RUN / f"step_{s}" for s in (2500, 3750)}
    fake_hub_repo(cache, SERIES_REPO, {**series, "sudoku6/all_config.yaml": RUN / "all_config.yaml"}, COMMIT)
    return home, folder


@pytest.fixture
def offline(hub, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(hub[0]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c  # read at import: point this process at the test cache

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(hub[0] / "hub"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    return hub


def test_references_parse():
    r = parse("hf://sapientinc/HRM-checkpoint-ARC-2@v1.0/checkpoints/step_5")
    assert (r.repo_id, r.revision, r.path) == ("sapientinc/HRM-checkpoint-ARC-2", "v1.0", "checkpoints/step_5")
    assert str(r) == "hf://sapientinc/HRM-checkpoint-ARC-2@v1.0/checkpoints/step_5"
    assert parse(Path("hf://a/b")).repo_id == "a/b"  # what pathlib makes of it (hf:/a/b) still parses
    for bad in ("hf://onlyowner", "hf://a/b@", "hf://a/../b"):
        with pytest.raises(HRMEvalError, match="OWNER/REPO"):
            parse(bad)


def test_load_checkpoint_from_a_step_repo_is_the_local_file_with_its_provenance(offline):
    local = load_checkpoint(RUN / "step_11250")
    loaded = load_checkpoint(f"hf://{STEP_REPO}")  # the newest step, as for a local run directory
    assert loaded.step == 11250 and loaded.sha256 == local.sha256 and loaded.config == local.config
    hub = checkpoint_record(loaded)["hub"]
    assert hub == {"repo_id": STEP_REPO, "revision": COMMIT, "path_in_repo": "step_11250"}
    assert load_checkpoint(f"hf://{STEP_REPO}@main/step_10000").step == 10000
    assert load_checkpoint(f"hf://{STEP_REPO}/step_10000").sha256 == load_checkpoint(RUN / "step_10000").sha256
    assert "hub" not in checkpoint_record(local) and hub_origin(RUN / "step_11250") is None
    folder = load_checkpoint(f"hf://{FOLDER_REPO}")
    assert folder.path.name == "model.safetensors" and folder.config == local.config
    assert hub_origin(folder.path)["revision"] == FOLDER_COMMIT


def test_hub_errors_are_one_line(offline):
    with pytest.raises(HRMEvalError, match="not in the local hub cache and HF_HUB_OFFLINE is set"):
        load_checkpoint("hf://sapientinc/HRM-checkpoint-sudoku-extreme")
    with pytest.raises(HRMEvalError, match=r"no checkpoint file \(step_<N>, checkpoint or model.safetensors\)"):
        load_checkpoint("hf://sapientinc/HRM-empty")
    with pytest.raises(HRMEvalError, match="no 'step_5' in the local hub cache"):
        load_checkpoint(f"hf://{STEP_REPO}/step_5")


def test_compare_over_a_hub_run_matches_the_local_run(offline, tmp_path, monkeypatch):
    kw = dict(data=RUN / "heldout", device="cpu", limit=int(LIMIT), progress=False, plots=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache-local"))
    local = compare_checkpoints(run=RUN, output_dir=tmp_path / "local", **kw)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache-hub"))  # its own cache: the hub run really runs
    hub = compare_checkpoints(run=f"hf://{STEP_REPO}", output_dir=tmp_path / "hub", **kw)
    assert [r["name"] for r in hub["checkpoints"]] == ["step_10000", "step_11250"]
    by_name = {r["name"]: r for r in local["checkpoints"]}
    for r in hub["checkpoints"]:
        assert r["cache"] == "miss" and r["metrics"] == by_name[r["name"]]["metrics"]
        assert r["sha256"] == by_name[r["name"]]["sha256"]
    assert [c["hub"]["revision"] for c in hub["provenance"]["checkpoints"]] == [COMMIT, COMMIT]


def test_the_folder_to_push_has_a_card_huggingface_hub_reads(tmp_path, monkeypatch):
    """The folder and the card that are pushed: huggingface_hub's own card parser reads the
    model-index (task, dataset, exact accuracy and its interval)."""
    from huggingface_hub import ModelCard

    from hrm_eval.evaluation.run import simple_evaluate
    from hrm_eval.evaluation.stats import wilson_interval
    from hrm_eval.export.hub import push_folder

    results = simple_evaluate(RUN / "step_11250", RUN / "heldout", device="cpu", limit=32, progress=False)
    folder = tmp_path / "folder"
    write_model_folder(load_checkpoint(RUN / "step_11250", data=RUN / "heldout"), folder, results=results,
                       task={"name": "sudoku6", "vocab_size": 8, "seq_len": 36})  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "hrm-eval" and "sudoku6" in card.data.tags
    (result,) = card.data.eval_results
    m = results["aggregate_metrics"]
    solved = round(m["exact_accuracy"] * 32)
    assert (
        result.task_type == "puzzle-solving" and result.dataset_type == "sudoku6" and result.dataset_name == "heldout"
    )
    assert result.metric_type == "exact_accuracy" and result.metric_value == round(m["exact_accuracy"], 6)
    assert result.metric_args == {"ci95": [round(x, 6) for x in wilson_interval(solved, 32)], "num_puzzles": 32}
    assert "95% interval" in card.text
    # offline, the push is one line naming the cause
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(HRMEvalError, match="--push-to-hub sapientinc/HRM-sudoku6-hard: .*offline"):
        push_folder(folder, "sapientinc/HRM-sudoku6-hard")
    with pytest.raises(HRMEvalError, match="expected OWNER/REPO"):
        push_folder(folder, "no-owner")


def test_from_pretrained_and_save_model_round_trip(offline, tmp_path):
    """ACTModel.from_pretrained(hf://...) then hrm_eval.export.save_model: a folder the loader
    reads back with the same tensors and architecture (and that hf:// serves like an export)."""
    import torch

    from hrm_eval.export import save_model
    from hrm_eval.models import ACTModel

    model = ACTModel.from_pretrained(f"hf://{FOLDER_REPO}")
    saved = save_model(model, tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    again = load_checkpoint(saved)
    assert again.config == model.config
    theirs = again.model.inner.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.inner.state_dict().items())
    assert ACTModel.from_pretrained(RUN / "step_11250").config == model.config


def test_serve_loads_a_hub_checkpoint(offline):
    import torch

    from hrm_eval.serve.config import ServeConfig
    from hrm_eval.serve.model import ServedModel

    served = ServedModel.load(ServeConfig(checkpoint=f"hf://{STEP_REPO}", dtype="float32"), torch.device("cpu"))
    local = load_checkpoint(RUN / "step_11250")
    assert served.loaded.sha256 == local.sha256 and served.config == local.config
    assert served.describe()["name"] == f"{STEP_REPO}/step_11250"


def test_ensemble_of_hub_checkpoints_matches_the_local_files(offline, tmp_path, monkeypatch):
    from hrm_eval.ensemble import evaluate_ensemble

    kw = dict(data=RUN / "heldout", strategy="vote", device="cpu", limit=int(LIMIT), progress=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache-local"))
    local = evaluate_ensemble([RUN / "step_10000", RUN / "step_11250"], **kw)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache-hub"))
    hub = evaluate_ensemble([f"hf://{STEP_REPO}/step_10000", f"hf://{STEP_REPO}@main/step_11250"], **kw)
    assert [m["name"] for m in hub["members"]] == ["step_10000", "step_11250"]
    assert [m["sha256"] for m in hub["members"]] == [m["sha256"] for m in local["members"]]
    assert hub["ensemble"] == local["ensemble"] and hub["best_member"] == local["best_member"]
    assert [c["hub"]["revision"] for c in hub["provenance"]["checkpoints"]] == [COMMIT, COMMIT]


def test_export_from_the_hub_records_where_it_came_from(offline, tmp_path):
    from hrm_eval.export.run import export_model

    export_model(f"hf://{STEP_REPO}/step_10000", tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["source"]["sha256"] == load_checkpoint(RUN / "step_10000").sha256
    assert config["source"]["hub"] == {"repo_id": STEP_REPO, "revision": COMMIT, "path_in_repo": "step_10000"}
    assert config["training_step"] == 10000


def test_a_folder_of_a_repo_is_a_run(offline):
    from hrm_eval.members.predictions import resolve_checkpoints

    assert load_checkpoint(f"hf://{SERIES_REPO}/sudoku6").step == 3750  # its newest step
    paths, home = resolve_checkpoints(None, f"hf://{SERIES_REPO}/sudoku6")
    assert [p.name for p in paths] == ["step_2500", "step_3750"] and (home / "all_config.yaml").is_file()
    assert hub_origin(paths[0]) == {"repo_id": SERIES_REPO, "revision": COMMIT, "path_in_repo": "sudoku6/step_2500"}
    with pytest.raises(HRMEvalError, match="no checkpoint file"):
        load_checkpoint(f"hf://{SERIES_REPO}")  # the root holds only folders
