"""serve: an HTTP API and a web page over one checkpoint or several, one per task (needs the `serve` extra)."""

from __future__ import annotations

import argparse
import os

from hrm_eval.cli.base import Invocation, Mode, add_flags, model_config
from hrm_eval.inference.config import ModelFlags
from hrm_eval.inference.halting import SERVED_HALTING_MODES, modes_help
from hrm_eval.serve.config import ServeConfig
from hrm_eval.utils.config import ScalingSettings
from hrm_eval.utils.errors import HRMEvalError

API_KEY_ENV = "HRM_EVAL_API_KEY"  # a key in the environment stays out of `ps` listings


def serve_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--checkpoint",
        dest="checkpoints",
        action="append",
        help="step_<N> file or run directory; repeat it to serve several models, one per task "
        "(default: every bundled model there, one per task)",
    )
    g.add_argument("--data", dest="data_path", help="dataset directory for the (first) model's random puzzles")
    g.add_argument("--host", help="address to listen on; anything but localhost warns unless --api-key is set")
    g.add_argument("--port", type=int, help="port (0: any free port; the first line printed says which)")
    g.add_argument("--halting", choices=SERVED_HALTING_MODES, help=modes_help(SERVED_HALTING_MODES))
    g.add_argument("--max-batch", type=int, help="puzzles computed together (engine slots); 1 turns batching off")
    g.add_argument("--batch-wait-ms", type=float, help="how long an idle engine waits to gather a batch")
    g.add_argument("--max-queue", type=int, help="puzzles queued or in flight before 503")
    g.add_argument("--max-request-puzzles", type=int, help="puzzles in one batch request before 413")
    g.add_argument("--max-body-bytes", type=int, help="request body size before 413")
    g.add_argument("--timeout", dest="timeout_s", type=float, help="seconds before a request gets 504")
    g.add_argument(
        "--drain-timeout",
        dest="drain_timeout_s",
        type=float,
        help="on SIGTERM/SIGINT, seconds to finish in-flight requests before 503 (default: --timeout)",
    )
    g.add_argument("--header-timeout", dest="header_timeout_s", type=float, help="seconds to send headers (408)")
    g.add_argument("--body-timeout", dest="body_timeout_s", type=float, help="seconds to send the body (408)")
    g.add_argument("--max-connections", type=int, help="open connections before 503 (default 1024)")
    g.add_argument("--api-key", help=f"require `Authorization: Bearer KEY` on /v1 (or set ${API_KEY_ENV})")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    g.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"))
    g.add_argument("--threads", type=int, help="CPU threads of the engine (default: one per core)")
    add_flags(g, ModelFlags)
    add_flags(g, ScalingSettings)  # the default of a request without "budget" (README: Serve, thinking harder)
    g.add_argument(
        "--max-budget", type=int, help='the most ACT steps a request\'s "budget" may ask for (8 x halt_max_steps)'
    )


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
    serve_arguments,
    run_serve,
    ServeConfig,
)
