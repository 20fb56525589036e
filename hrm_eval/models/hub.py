"""Checkpoints on the Hugging Face Hub: `hf://OWNER/REPO[@REVISION][/PATH]` -> a local path in
huggingface_hub's standard cache (HF_HOME, HF_HUB_OFFLINE and tokens honoured by the library
itself), which the loader then reads exactly like a local file: the same safety rules (no
pickled code, sizes checked before allocation) apply to hub files unchanged.

What is fetched: the one checkpoint file asked for (or the newest `step_<N>`, else `checkpoint`,
else `model.safetensors` of the repo / folder) and the config beside it (`all_config.yaml`,
`config.json`); for a run (`--run hf://...`, compare and ensemble) every `step_<N>` of it.
`hub_origin(path)` recovers repo id and commit hash from where the cache put the file
(`models--OWNER--REPO/snapshots/<commit>/...`): provenance needs no other record.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrm_eval.utils.errors import HRMEvalError

PREFIX = "hf://"
CONFIG_FILES = ("all_config.yaml", "config.json")
CHECKPOINT_NAME = re.compile(r"^(step_\d+|checkpoint|model\.safetensors)$")
STEP_NAME = re.compile(r"^step_(\d+)$")
_SNAPSHOT = re.compile(r"models--(?P<repo>[^/\\]+)[/\\]snapshots[/\\](?P<commit>[0-9a-f]{40})(?:[/\\](?P<path>.*))?$")


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None
    path: str  # inside the repo, "" for its root

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{PREFIX}{self.repo_id}{rev}" + (f"/{self.path}" if self.path else "")


def is_hub_ref(value: Any) -> bool:
    """`hf://...`; also `hf:/...`, what pathlib makes of it (Path('hf://a/b') is 'hf:/a/b')."""
    return isinstance(value, (str, os.PathLike)) and str(value).startswith("hf:/")


def parse(value: Any) -> HubRef:
    """hf://OWNER/REPO[@REVISION][/PATH] -> HubRef; a one-line error for anything else."""
    text = str(value)
    rest = text[len(PREFIX) :] if text.startswith(PREFIX) else text[len("hf:/") :]
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 2 or any(p in (".", "..") for p in parts):
        raise HRMEvalError(f"{text}: a hub checkpoint is hf://OWNER/REPO[@REVISION][/PATH]")
    owner, repo = parts[0], parts[1]
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
        if not repo or not revision:
            raise HRMEvalError(f"{text}: a hub checkpoint is hf://OWNER/REPO[@REVISION][/PATH]")
    return HubRef(f"{owner}/{repo}", revision, "/".join(parts[2:]))


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise HRMEvalError(
            "hf:// checkpoints need huggingface_hub: pip install 'hrm-eval[hub]' (or download the files "
            "and give their local path)"
        ) from None
    return huggingface_hub


def localize(value: Any, *, run: bool = False) -> Path:
    """The local path of a hub reference, downloading what is missing: the checkpoint file
    (`run=False`; the repo / folder itself when PATH names none, then the loader picks the
    newest step as it does for a local run directory) or the run's folder with all its steps."""
    ref = parse(value)
    hub = _hub()
    offline = _offline(hub)
    files = None if offline else _listing(hub, ref)
    patterns = _patterns(ref, files, run)
    try:
        root = hub.snapshot_download(
            ref.repo_id, revision=ref.revision, allow_patterns=patterns, local_files_only=offline
        )
    except Exception as e:  # noqa: BLE001 - the hub's exception classes move between versions: sorted by name
        raise HRMEvalError(_error_line(ref, e, offline)) from None
    local = Path(root) / ref.path if ref.path else Path(root)
    if not local.exists():
        raise HRMEvalError(_missing(ref, offline))
    if local.is_dir() and not _has_checkpoint(local):
        raise HRMEvalError(_missing(ref, offline))
    return local


def _offline(hub: Any) -> bool:
    constants = getattr(hub, "constants", None)
    flag = getattr(constants, "HF_HUB_OFFLINE", None)
    if flag is None:
        flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(flag)


def _listing(hub: Any, ref: HubRef) -> list[str] | None:
    """The repo's files at the revision (online), to fetch only what is needed; None when the
    listing fails here (snapshot_download then raises the error worth reporting)."""
    try:
        return list(hub.HfApi().list_repo_files(ref.repo_id, revision=ref.revision))
    except Exception:  # noqa: BLE001 - any failure here: snapshot_download reports the one worth reporting
        return None


def _patterns(ref: HubRef, files: list[str] | None, run: bool) -> list[str]:
    """allow_patterns for snapshot_download: the checkpoint (or the run's steps) and its configs."""
    base = ref.path
    name = base.rsplit("/", 1)[-1]
    is_file = bool(base) and (CHECKPOINT_NAME.match(name) is not None or "." in name)
    if files is not None and base in files:
        is_file = True
    folder = base.rsplit("/", 1)[0] if is_file and "/" in base else ("" if is_file else base)
    prefix = f"{folder}/" if folder else ""
    configs = [prefix + c for c in CONFIG_FILES]
    if is_file:
        return [base, *configs]
    if not run and files is not None:  # one checkpoint: only the one the loader would pick
        pick = _pick(files, prefix)
        if pick is not None:
            return [pick, *configs]
    return [prefix + "step_*", prefix + "checkpoint", prefix + "model.safetensors", *configs]


def _pick(files: list[str], prefix: str) -> str | None:
    """What resolve_checkpoint_path picks in a folder: the newest step, else checkpoint, else
    model.safetensors."""
    here = [f[len(prefix) :] for f in files if f.startswith(prefix) and "/" not in f[len(prefix) :]]
    steps = sorted((int(m.group(1)), f) for f in here if (m := STEP_NAME.match(f)))
    if steps:
        return prefix + steps[-1][1]
    for name in ("checkpoint", "model.safetensors"):
        if name in here:
            return prefix + name
    return None


def _has_checkpoint(folder: Path) -> bool:
    return any(CHECKPOINT_NAME.match(p.name) for p in folder.iterdir() if p.is_file())


def _missing(ref: HubRef, offline: bool) -> str:
    where = "in the local hub cache (HF_HUB_OFFLINE is set)" if offline else "in the repo"
    what = f"'{ref.path}'" if ref.path else "checkpoint file (step_<N>, checkpoint or model.safetensors)"
    return f"{ref}: no {what} {where}"


def _error_line(ref: HubRef, e: BaseException, offline: bool) -> str:
    kinds = {c.__name__ for c in type(e).__mro__}  # by name, subclasses included (classes move between versions)
    if kinds & {"RepositoryNotFoundError", "GatedRepoError"}:
        return (
            f"{ref}: hub repo '{ref.repo_id}' not found (or private/gated: log in with `hf auth login` or set HF_TOKEN)"
        )
    if "RevisionNotFoundError" in kinds:
        return f"{ref}: revision '{ref.revision}' not found in hub repo '{ref.repo_id}'"
    if offline or kinds & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"}:
        return (
            f"{ref}: not in the local hub cache and "
            + ("HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached")
            + f" (cache: {_cache_dir()}); run once online, or unset HF_HUB_OFFLINE"
        )
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"{ref}: cannot fetch from the hub: {text}"


def _cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except (ImportError, AttributeError):
        return "~/.cache/huggingface/hub"


def hub_origin(path: Any) -> dict[str, Any] | None:
    """{repo_id, revision (the commit hash), path_in_repo} when `path` lies in a hub cache
    snapshot (where `localize` puts files), else None."""
    m = _SNAPSHOT.search(str(path))
    if m is None:
        return None
    return {
        "repo_id": m.group("repo").replace("--", "/", 1),
        "revision": m.group("commit"),
        "path_in_repo": m.group("path") or "",
    }
