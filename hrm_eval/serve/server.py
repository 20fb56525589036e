"""Starting the server: the model, the engine thread, the app, uvicorn on a bound socket; and
stopping it: SIGTERM / SIGINT drain it (`DrainingServer`) and it exits 0.

Draining, step by step (README: Serve, "Stopping"):
  1. the signal: /ready answers 503 and /health `"status": "draining"` at once; new solve
     requests get 503 JSON with `Connection: close` (a load balancer sends them elsewhere);
     the socket stays open so that probes and in-flight clients are still answered;
  2. in-flight requests (solves, batches, streams) finish, for up to `--drain-timeout` seconds
     (default: `--timeout`, the longest a request admitted before the signal can take);
  3. past that, what still waits gets 503 JSON (a stream a final `error` event with status 503);
  4. uvicorn closes the connections and the process exits with status 0.
A second signal during the drain stops at once (uvicorn's forced exit)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Any

import torch
import uvicorn

from hrm_eval import resources
from hrm_eval.inference.runtime import choose_threads, physical_cores
from hrm_eval.serve.bridge import EngineBridge, ServeEngine
from hrm_eval.serve.config import ServeConfig
from hrm_eval.serve.guard import guarded_protocol
from hrm_eval.serve.metrics import Metrics
from hrm_eval.serve.model import ServedModel
from hrm_eval.utils.device import resolve_device
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger("hrm_eval")
SWITCH_INTERVAL_S = 0.0005
# After the drain: how long uvicorn may take to close connections whose responses are complete
# (each has just been answered or told 503; this only bounds a stuck client's socket)
CLOSE_GRACE_S = 5


def build(cfg: ServeConfig, model_config: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    """The ASGI app and its models (app.Lane: each with its own, not yet started, engine bridge)."""
    # why: the app imports FastAPI (the serve extra); `hrm_eval.serve` itself imports without it
    from hrm_eval.serve.app import Lane, create_app, serve_scaling

    device = resolve_device(cfg.device)
    models = [
        ServedModel.load(cfg, device, model_config, checkpoint, first=i == 0)
        for i, checkpoint in enumerate(served_checkpoints(cfg))
    ]
    one_per_task(models)
    # cast_weights: each model is ours alone, so its weights can be stored in the forward dtype once;
    # max_row_steps: an attempt of a request with a budget may think on past the halting limit
    scalings = [serve_scaling(served, cfg) for served in models]
    engines = [
        ServeEngine(
            served.loaded.model,
            slots=cfg.max_batch,
            device=device,
            halting=served.halting,
            cast_weights=True,
            max_row_steps=scaling.row_steps,
            init_noise=scaling.noise,
        )
        for served, scaling in zip(models, scalings)
    ]
    threads = engine_threads(cfg.threads, device)
    wait_s = cfg.batch_wait_ms / 1000.0
    metrics = Metrics(act_step_limit=max(engine.limit for engine in engines))
    lanes = []
    for served, scaling, engine in zip(models, scalings, engines):
        bridge = EngineBridge(engine, max_queue=cfg.max_queue, batch_wait_s=wait_s, threads=threads, metrics=metrics)
        bridge.confidence = scaling.confidence
        lanes.append(Lane(served, bridge, scaling))
    return create_app(lanes, cfg, metrics), lanes


def served_checkpoints(cfg: ServeConfig) -> list[str | None]:
    """What to serve: --checkpoint (repeated: several models), else every bundled model that is
    there, one per task (the 6x6 default, and the 9x9 model once shipped); None: the default."""
    if cfg.checkpoints:
        return [*cfg.checkpoints]
    if cfg.checkpoint:
        return [cfg.checkpoint]
    present: list[str | None] = [str(m.path) for m in resources.task_models() if m.present]
    # the default alone (or nothing there: its "not found"): served as it always was
    return present if present and present != [str(resources.bundled_run())] else [None]


def one_per_task(models: list[ServedModel]) -> None:
    """A puzzle goes to the model of its task: two models of one task leave it undecided."""
    seen: dict[str, ServedModel] = {}
    for served in models:
        other = seen.setdefault(served.label, served)
        if other is not served:
            raise HRMEvalError(
                f"--checkpoint {other.loaded.path} and --checkpoint {served.loaded.path} are both "
                f"{served.label} models: serve one model per task"
            )


def engine_threads(requested: int | None, device: torch.device) -> int:
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


def serve(cfg: ServeConfig, model_config: dict[str, Any] | None = None) -> None:
    """Run until interrupted (Ctrl-C: a clean stop). Prints `serving <model> ... on <url>` once the
    socket is bound and the model loaded."""
    if not cfg.local_only and cfg.api_key is None:
        print(
            f"warning: --host {cfg.host} accepts connections from other machines and no --api-key is set: "
            "anyone who can reach it can use it (put a reverse proxy with TLS and a key in front)",
            file=sys.stderr,
        )
    sock = bind(cfg.host, cfg.port)
    app, lanes = build(cfg, model_config)
    # The engine thread gives up the GIL inside every torch op and must get it back to issue the
    # next one; while request handling runs Python it waits up to the switch interval each time
    # (5 ms by default, longer than a small ACT step's ops). 0.5 ms bounds that wait.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    for lane in lanes:
        lane.bridge.start()
    scaling = app.service.scaling
    limits = ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in cfg.limits(scaling.max_budget).items()
    )
    models = ", ".join(
        f"{m.name} ({m.config.variant}, task {m.task.name if m.task else 'none'}, halting {cfg.halting}, "
        f"max batch {cfg.max_batch}, threads {lane.bridge.threads})"
        for lane, m in ((lane, lane.served) for lane in lanes)
    )
    print(
        f"serving {models} on {url_of(sock)}  "
        f"(page: /, API docs: /docs)\nlimits: {limits}\nscaling: {scaling.describe()['default']}"
        + (f" (budget {scaling.default_budget} ACT steps)" if scaling.default_budget else "")
        + f'; a request\'s "budget" may ask for up to {scaling.max_budget} ACT steps',
        flush=True,
    )
    config = uvicorn.Config(
        app,
        log_level="warning" if cfg.log_level == "INFO" else cfg.log_level.lower(),  # our own line says where
        access_log=False,
        http=guarded_protocol(cfg.header_timeout_s, cfg.max_connections, app.metrics.refused_connection),
        timeout_graceful_shutdown=CLOSE_GRACE_S,
        lifespan="off",
    )
    try:
        DrainingServer(config, app.service).run(sockets=[sock])
    finally:
        for lane in lanes:
            lane.bridge.stop()
        sock.close()


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain between the signal and the shutdown (module docstring).
    uvicorn would stop at once and raise the signal again afterwards (exit status -15); here the
    signal only starts the drain, the main loop ends when the drain is over, and `run` returns."""

    def __init__(self, config: Any, service: Any):
        super().__init__(config)
        self.service = service
        self.signalled = False
        self.drain_deadline = 0.0
        self.aborted = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.signalled:  # a second signal: stop now
            self.should_exit = self.force_exit = True
            return
        self.signalled = True  # the signal handler only flags it; on_tick (on the loop) acts

    async def on_tick(self, counter: int) -> bool:
        if self.signalled and not self.service.draining:
            self.service.start_drain()
            self.drain_deadline = time.monotonic() + self.service.cfg.drain_s
            log.warning("draining: %d requests in flight", self.service.requests_in_flight)
        if self.service.draining and not self.should_exit:
            self.should_exit = self._drained()
        return await super().on_tick(counter)

    def _drained(self) -> bool:
        if self.service.requests_in_flight == 0:
            return True
        if time.monotonic() < self.drain_deadline:
            return False
        if not self.aborted:  # the drain timeout: 503 for what still waits, then the handlers return
            self.aborted = True
            n = self.service.abort_waiting(
                f"draining: no answer within the drain timeout ({self.service.cfg.drain_s:g} s)"
            )
            log.warning("drain timeout: %d puzzles answered 503", n)
        # the handlers answer within a tick or two; a client that does not read its answer must
        # not hold the exit: uvicorn closes it after CLOSE_GRACE_S
        return time.monotonic() > self.drain_deadline + 1.0
