"""Starting the server: the model, the engine thread, the app, uvicorn on a bound socket."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any, Dict, Optional, Tuple

import torch

from hrm_eval.inference.engine import ACTEngine
from hrm_eval.inference.runtime import choose_threads, physical_cores
from hrm_eval.serve.config import ServeConfig
from hrm_eval.serve.model import ServedModel
from hrm_eval.serve.scheduler import BatchScheduler
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger("hrm_eval")
SWITCH_INTERVAL_S = 0.0005


def build(cfg: ServeConfig, model_config: Optional[Dict[str, Any]] = None) -> Tuple[Any, ServedModel, BatchScheduler]:
    """The ASGI app, its model and its (not yet started) scheduler."""
    from hrm_eval.serve.app import create_app

    device = resolve_device(cfg.device)
    served = ServedModel.load(cfg, device, model_config)
    # cast_weights: the model is ours alone, so its weights can be stored in the forward dtype once
    engine = ACTEngine(
        served.loaded.model, slots=cfg.max_batch, device=device, halting=served.halting, cast_weights=True
    )
    threads = engine_threads(cfg.threads, device)
    wait_s = cfg.batch_wait_ms / 1000.0
    scheduler = BatchScheduler(engine, max_queue=cfg.max_queue, batch_wait_s=wait_s, threads=threads)
    return create_app(served, scheduler, cfg), served, scheduler


def engine_threads(requested: Optional[int], device: torch.device) -> int:
    """CPU threads for the engine: as asked (--threads, else OMP_NUM_THREADS), else one per core.
    Measured on an idle 2-core machine (benchmarks/serve_load.py, 64 clients x 30 s, dynamic
    batching): 2 engine threads served 80.1 puzzles/s at p50 720 ms, 1 thread (leaving a core to
    HTTP) 63.6 puzzles/s at p50 900 ms: the batched steps use the cores better than request
    handling does. (One-at-a-time is the other way round, 13.3 vs 34.0: tiny steps cannot use
    a second thread and contend with HTTP; --threads 1 for that.)"""
    if requested is not None or os.environ.get("OMP_NUM_THREADS") or device.type != "cpu":
        return choose_threads(requested, device)
    return physical_cores()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: any free port); a one-line error when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise HRMEvalError(f"--host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise HRMEvalError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(cfg: ServeConfig, model_config: Optional[Dict[str, Any]] = None) -> None:
    """Run until interrupted (Ctrl-C: a clean stop). Prints `serving <model> ... on <url>` once the
    socket is bound and the model loaded."""
    import uvicorn

    if not cfg.local_only and cfg.api_key is None:
        print(
            f"warning: --host {cfg.host} accepts connections from other machines and no --api-key is set: "
            "anyone who can reach it can use it (put a reverse proxy with TLS and a key in front)",
            file=sys.stderr,
        )
    sock = bind(cfg.host, cfg.port)
    app, served, scheduler = build(cfg, model_config)
    # The engine thread gives up the GIL inside every torch op and must get it back to issue the
    # next one; while request handling runs Python it waits up to the switch interval each time
    # (5 ms by default, longer than a small ACT step's ops). 0.5 ms bounds that wait.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    scheduler.start()
    print(
        f"serving {served.name} ({served.config.variant}, task {served.task.name if served.task else 'none'}, "
        f"halting {cfg.halting}, max batch {cfg.max_batch}, threads {scheduler.threads}) on {url_of(sock)}  "
        f"(page: /, API docs: /docs)",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        log_level="warning" if cfg.log_level == "INFO" else cfg.log_level.lower(),  # our own line says where
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="off",
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])  # returns after a graceful shutdown on Ctrl-C / SIGTERM
    except KeyboardInterrupt:  # uvicorn raises the signal it caught again once it has shut down
        pass
    finally:
        scheduler.stop()
        sock.close()
