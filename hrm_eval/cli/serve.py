"""serve: an HTTP API and a web page over one checkpoint or several, one per task (needs the `serve` extra)."""

from __future__ import annotations

import argparse
import os

from hrm_eval.cli.base import Invocation, Mode, add_flags, model_config
from hrm_eval.inference.config import ModelFlags
from hrm_eval.serve.config import API_KEY_ENV, ServeConfig
from hrm_eval.utils.errors import HRMEvalError


def serve_arguments(g: argparse._ArgumentGroup) -> None:
    # its own settings, then test-time scaling (a request without "budget" gets these; README:
    # Serve, thinking harder), then --model-config/--arch
    add_flags(g, ServeConfig)
    add_flags(g, ModelFlags)


def run_serve(inv: Invocation) -> int:
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise HRMEvalError(
            f"--mode serve needs the serve extra: pip install 'hrm-eval[serve]' ({e.name} missing)"
        ) from None
    from hrm_eval.serve.server import serve  # why: FastAPI and uvicorn are the optional serve extra

    if "api_key" not in inv.flags and os.environ.get(API_KEY_ENV):
        inv.flags["api_key"] = os.environ[API_KEY_ENV]
    given = inv.flags.pop("checkpoints", None)
    if given is not None:  # flags win over a config file's checkpoint(s); one is the one-model form
        inv.flags["checkpoint"], inv.flags["checkpoints"] = (given[0], []) if len(given) == 1 else (None, given)
    cfg = inv.config(ServeConfig)
    serve(cfg, model_config(cfg.model_config_path))
    return 0


SERVE = Mode(
    "serve",
    "Serve a checkpoint, or several (one per task), over HTTP (JSON API, streaming, a web page) with dynamic batching.",
    run_serve,
    ServeConfig,
    flags=serve_arguments,
)
