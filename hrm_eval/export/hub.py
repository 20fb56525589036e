"""A model folder to the Hugging Face Hub: the card's metadata (the YAML block the hub reads:
library, tags and, when the folder was evaluated, a `model-index` with the task, the dataset and
exact accuracy with its 95% interval) and the push (`--push-to-hub OWNER/REPO`).

The push uploads the folder `--mode export --format safetensors` wrote, as it is: what is on the
hub is byte for byte what was checked here, and `hf://OWNER/REPO` reads it back (hrm_eval.models.hub).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hrm_eval.utils.errors import HRMEvalError

LIBRARY_NAME = "hrm-eval"


def card_metadata(config: dict[str, Any], results: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model card's metadata. `model-index` only from measured results (never a claim the
    folder's own evaluation did not make)."""
    task = (config.get("task") or {}).get("name")
    meta: dict[str, Any] = {
        "library_name": LIBRARY_NAME,
        "tags": ["recursive-reasoning", "adaptive-computation-time", config["family"], *([task] if task else [])],
    }
    metrics = (results or {}).get("aggregate_metrics") or {}
    if "exact_accuracy" not in metrics:
        return meta
    data = (results or {}).get("provenance", {}).get("dataset", {})
    ci = metrics.get("exact_accuracy_ci95")
    n = metrics.get("total_puzzles")
    entry: dict[str, Any] = {
        "type": "exact_accuracy",
        "name": "exact accuracy (solve rate)"
        + (f", 95% Wilson interval [{ci[0]:.4f}, {ci[1]:.4f}] on {n} puzzles" if ci else ""),
        "value": round(float(metrics["exact_accuracy"]), 6),
    }
    if ci:
        entry["args"] = {"ci95": [round(float(ci[0]), 6), round(float(ci[1]), 6)], "num_puzzles": n}
    name = Path(str(data.get("path") or "dataset")).name
    meta["model-index"] = [
        {
            "name": f"{config['family'].upper()} {config['variant']}",
            "results": [
                {
                    "task": {"type": "puzzle-solving", "name": task or "puzzles"},
                    "dataset": {"name": name, "type": task or "puzzles", "split": data.get("split", "test")},
                    "metrics": [entry],
                }
            ],
        }
    ]
    return meta


def front_matter(meta: dict[str, Any]) -> str:
    """The `---` YAML block at the top of README.md that the hub reads as the card's metadata."""
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n"


def push_folder(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None) -> str:
    """Upload the model folder to `repo_id` (created when missing; `private`), on branch `revision`
    (created from main when missing); returns the commit's URL. Token: HF_TOKEN or `hf auth login`."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise HRMEvalError("--push-to-hub needs huggingface_hub: pip install 'hrm-eval[hub]'") from None
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HRMEvalError(f"--push-to-hub {repo_id}: expected OWNER/REPO")
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            revision=revision,
            commit_message=f"{LIBRARY_NAME} export",
        )
    except Exception as e:  # noqa: BLE001 - the hub's exception classes move between versions: one line, named
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HRMEvalError(f"--push-to-hub {repo_id}: {type(e).__name__}: {text}") from None
    return str(getattr(info, "commit_url", info))
