"""The HTTP app: routes, error handling, the API key, body limits, draining, the page.

    GET  /                   the page (static/index.html)                       (and HEAD)
    GET  /health             liveness: 200 while the engine runs; "draining" after SIGTERM (and HEAD)
    GET  /ready              readiness: 200, or 503 while draining             (and HEAD)
    GET  /metrics            Prometheus text format (metrics.py lists the series)
    GET  /v1/stats           the same for people, JSON: counts, latency, recent puzzles/s
    GET  /v1/model           family, variant, layout, checkpoint sha256, dtype, halting, limits (and HEAD);
                             with several models: the first, its `tasks` those of all, and `models`
    GET  /v1/models          every served model as /v1/model describes one (and HEAD)
    GET  /v1/puzzles/random  a puzzle of the test set (and its solution), for the page
    POST /v1/solve           one puzzle -> its answer
    POST /v1/solve/batch     many puzzles -> answers in order
    POST /v1/solve/stream    server-sent events: `puzzle` (as read), one `step` per ACT step, `final`
    GET  /v1/solve/stream    the same with ?puzzle=...&task=... (for curl and EventSource)
    GET  /docs, /redoc       the API pages, their scripts served from here (fastapi-offline)

Several models (one per task, `Lane`): each has its own engine thread, slots, queue and scaling
settings; a request goes to the model of its `task` when it names one, else to the one whose task
reads the puzzle (a Sudoku's size: 36 cells to a 6x6 model, 81 to a 9x9 one). With one model
every route answers exactly as it did before several were possible.

Every error is JSON `{"error": "<field>: <reason>", "status": N}`. The Gate in front of the app
reads the whole body (size, time, encoding and nesting checked before any parsing) and catches
what nothing else did: an unexpected exception is logged, answered 500 in JSON and counted in
`hrm_serve_internal_errors_total` (each one is a bug).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from hrm_eval.data.tasks import get_task
from hrm_eval.serve.bridge import EngineBridge, QueueFull, Ticket
from hrm_eval.serve.config import ServeConfig
from hrm_eval.serve.guard import MAX_JSON_DEPTH, json_depth
from hrm_eval.serve.metrics import Metrics
from hrm_eval.serve.model import EngineAnswer, Puzzle, RequestError, ServedModel
from hrm_eval.serve.scaling import ServeScaling
from hrm_eval.serve.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    PuzzleInput,
    RandomPuzzle,
    SolveRequest,
    SolveResponse,
)
from hrm_eval.utils.errors import HRMEvalError

log = logging.getLogger("hrm_eval")
STATIC = Path(__file__).parent / "static"
RETRY_AFTER_S = 1  # a full queue drains within about a second at the engine's throughput
CLIENT_GONE = 499  # nginx's "client closed request": in the metrics only, nobody receives it
ROUTES = (
    "/",
    "/health",
    "/ready",
    "/metrics",
    "/favicon.ico",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/v1/model",
    "/v1/models",
    "/v1/stats",
    "/v1/puzzles/random",
    "/v1/solve",
    "/v1/solve/batch",
    "/v1/solve/stream",
)
# The HTML pages (/, /docs, /redoc) may load nothing from anywhere but this server: the browser
# enforces it (ReDoc's bundle, for one, would fetch its logo from its vendor's CDN). Inline
# scripts and styles: Swagger UI's start-up call and both bundles' styling.
HTML_PAGES = ("/", "/docs", "/redoc")
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in (
        (400, "not HTTP/1.1 the server can read"),
        (401, "missing or wrong API key (with --api-key)"),
        (408, "headers or body not sent within --header-timeout / --body-timeout"),
        (413, "body or batch too large"),
        (422, "malformed JSON (not UTF-8, nested too deeply) or a wrong puzzle: the field and the reason"),
        (500, "a bug: logged and counted"),
        (503, "queue full (retry after Retry-After seconds), too many connections, or draining for shutdown"),
        (504, "the request's deadline passed"),
    )
}


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # ensure_ascii: a message may quote what the client sent, lone surrogates included, which
    # cannot be encoded as UTF-8 (JSONResponse would raise while rendering: a 500)
    body = json.dumps({"error": message, "status": status}, ensure_ascii=True)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def validation_message(exc: RequestValidationError) -> str:
    """The first problem as `field: reason`, the field written as the client wrote it."""
    err = exc.errors()[0]
    loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query")]
    if err.get("type") == "json_invalid":
        return f"body: not valid JSON ({err.get('ctx', {}).get('error', err['msg'])})"
    field = "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc).lstrip(".") or "body"
    return f"{field}: {err['msg'].removeprefix('Value error, ')}"


class Outcome:
    """A request's final status as the Gate records it; a stream sets it when it ends (its
    response started as 200 before the answer was known)."""

    def __init__(self) -> None:
        self.status: int | None = None


class Gate:
    """ASGI middleware in front of every route: the API key for /v1, the body (size, time,
    encoding, nesting), draining, the last-resort 500, metrics. Done before routing so that no
    handler ever sees an unauthorised, oversized, slow or hostile body."""

    def __init__(self, app: Any, service: Service):
        self.app, self.service, self.cfg, self.metrics = app, service, service.cfg, service.metrics

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, path, status, outcome = time.perf_counter(), scope["path"], [0], Outcome()
        scope["hrm.outcome"] = outcome

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if path in HTML_PAGES:
                    message["headers"] = [*message.get("headers", []), (b"content-security-policy", CSP.encode())]
            await send(message)

        self.service.requests_in_flight += 1
        try:
            await self._handle(scope, receive, sending)
        except Exception:  # noqa: BLE001 - the last resort: a bug, but never a plain-text 500
            log.exception("unexpected error in %s %s", scope["method"], path)
            self.metrics.internal.inc()
            outcome.status = 500
            if not status[0]:
                await error_response(500, "internal error (logged)")(scope, receive, sending)
        finally:
            self.service.requests_in_flight -= 1
            # labels from a fixed set: a client inventing paths or methods cannot add series
            route = path if path in ROUTES else ("/static" if path.startswith("/static") else "other")
            method = scope["method"] if scope["method"] in METHODS else "other"
            final = outcome.status or status[0] or CLIENT_GONE
            self.metrics.request(route, method, final, time.perf_counter() - start)

    async def _handle(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.cfg.api_key is not None and path.startswith("/v1") and not self._authorised(headers):
            response = error_response(401, "Authorization: send `Bearer <key>`", {"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        if self.service.draining and path.startswith("/v1/solve"):
            return await draining_response(self.cfg)(scope, receive, send)
        try:
            body = await asyncio.wait_for(self._read_body(headers, receive), self.cfg.body_timeout_s)
        except asyncio.TimeoutError:
            message = f"body: not received within {self.cfg.body_timeout_s:g} s"
            return await error_response(408, message, {"Connection": "close"})(scope, receive, send)
        if body is None:
            message = f"body: larger than {self.cfg.max_body_bytes} bytes"
            return await error_response(413, message, {"Connection": "close"})(scope, receive, send)
        problem = body_problem(body) if body and path.startswith("/v1") else None
        if problem is not None:
            return await error_response(422, problem)(scope, receive, send)
        await self.app(scope, _replay(body, receive), send)

    def _authorised(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        assert self.cfg.api_key is not None
        # compare_digest: the time taken does not tell how much of a guess was right; the header's
        # bytes as sent (decoded as latin-1 above) against the key's UTF-8
        sent = token.strip().encode("latin-1")
        return scheme.lower() == "bearer" and hmac.compare_digest(sent, self.cfg.api_key.encode())

    async def _read_body(self, headers: dict[str, str], receive: Callable) -> bytes | None:
        """The whole body, or None when it is over the limit (by its Content-Length or as read)."""
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.cfg.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.cfg.max_body_bytes:
                return None
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def body_problem(body: bytes) -> str | None:
    """Why a JSON body is refused before it is parsed: not UTF-8 (RFC 8259), or nested so deeply
    that a recursive parser would work (and recurse) on it. None when it may be parsed."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"body: not valid JSON (not UTF-8 at byte {e.start})"
    if json_depth(body) > MAX_JSON_DEPTH:
        return f"body: not valid JSON (nested deeper than {MAX_JSON_DEPTH} levels)"
    return None


def draining_response(cfg: ServeConfig) -> Response:
    message = "draining: the server is shutting down; send it to another instance"
    return error_response(503, message, {"Retry-After": str(RETRY_AFTER_S), "Connection": "close"})


def _replay(body: bytes, receive: Callable) -> Callable[[], Awaitable[dict[str, Any]]]:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: disconnects, which solves and streams listen for

    return replay


async def _client_gone(receive: Callable) -> None:
    """Returns when the client has closed the connection (the body was read before)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        await asyncio.sleep(0.05)  # no second body exists; never spin on one


@dataclass(eq=False)
class Lane:
    """One served model with what is its own: the engine thread and its slots and queue
    (`bridge`), and the scaling settings resolved for the model."""

    served: ServedModel
    bridge: EngineBridge
    scaling: ServeScaling

    def info(self, cfg: ServeConfig) -> dict[str, Any]:
        """What GET /v1/model says of this model."""
        info = self.served.describe()
        info["max_batch"] = self.bridge.engine.slots
        info["limits"] = cfg.limits(self.scaling.max_budget)
        info["scaling"] = self.scaling.describe()
        return info


class Service:
    """The handlers' shared state: the models (lanes), the limits, the metrics, draining.
    `served`, `bridge` and `scaling` are the first model's: all there is with one model."""

    def __init__(self, lanes: list[Lane], cfg: ServeConfig, metrics: Metrics):
        self.lanes, self.cfg, self.metrics = lanes, cfg, metrics
        self.served, self.bridge, self.scaling = lanes[0].served, lanes[0].bridge, lanes[0].scaling
        self._keys = itertools.count()  # scaled puzzles' numbers (their noise seeds)
        self.rng = np.random.default_rng()
        self.live: set[Ticket] = set()  # tickets of requests still waiting (event loop only)
        self.requests_in_flight = 0
        self.draining = False

    # ---- which model ---------------------------------------------------------------------------
    def puzzle(self, item: Any, where: str = "") -> tuple[Lane, Puzzle]:
        """A request item's model and its puzzle as that model reads it (RequestError 422)."""
        lane = self.lanes[0] if len(self.lanes) == 1 else self._route(item, where)
        return lane, lane.served.puzzle(item, where)

    def _route(self, item: Any, where: str) -> Lane:
        """Several models: the one of the item's `task`, else the first whose layout the tokens
        have or whose task reads the puzzle; 422 naming what is served when none does."""
        if item.task is not None:
            return self.lane_of_task(item.task, where)
        value = item.grid if item.grid is not None else item.puzzle
        if isinstance(value, str) and value.lstrip().startswith("[") and json_depth(value) > MAX_JSON_DEPTH:
            return self.lanes[0]  # never handed to a task's parser: its `puzzle` says why
        for lane in self.lanes:
            if lane.served.reads(item):
                return lane
        field = "tokens" if item.tokens is not None else "grid" if item.grid is not None else "puzzle"
        sizes = ", ".join(f"{lane.served.config.seq_len} cells ({lane.served.label})" for lane in self.lanes)
        raise RequestError(422, f"{where}{field}: fits none of the served models; sizes served: {sizes}")

    def lane_of_task(self, name: str, where: str) -> Lane:
        """The model whose layout fits task `name` (the first such); 422 when none is served."""
        found = [lane for lane in self.lanes if any(t.name == name for t in lane.served.tasks())]
        if found:
            return found[0]
        get_task_or_422(name, where)  # an unknown name says so first
        served = ", ".join(t.name for lane in self.lanes for t in lane.served.tasks())
        raise RequestError(422, f"{where}task: {name} is not served here (served: {served})")

    def budgets(self, requested: list[int | None], where: list[str], lanes: list[Lane]) -> list[int | None]:
        """Each puzzle's budget (None: no scaling) by its model's settings; 422 naming the field
        over --max-budget."""
        out = []
        for budget, prefix, lane in zip(requested, where, lanes):
            try:
                out.append(lane.scaling.budget(budget))
            except ValueError as e:
                raise RequestError(422, f"{prefix}budget: {e}") from None
        return out

    def tickets(
        self,
        routed: list[tuple[Lane, Puzzle]],
        timeout_s: float | None,
        *,
        want_steps: bool,
        stream: bool,
        budgets: list[int | None] | None = None,
    ):
        """Tickets for the puzzles, each queued on its model's engine: all of them or none (503)."""
        loop = asyncio.get_running_loop()
        timeout = min(timeout_s or self.cfg.timeout_s, self.cfg.timeout_s)
        deadline = time.monotonic() + timeout
        tickets = []
        for (lane, p), budget in zip(routed, budgets or [None] * len(routed)):
            t = Ticket(
                p.tokens,
                p.identifier,
                deadline,
                loop,
                want_steps=want_steps,
                events=asyncio.Queue() if stream else None,
                timeout_s=timeout,
                scaled=self._work(lane, p, budget),
            )
            t.lane = lane
            tickets.append(t)
        submitted: list[Ticket] = []
        try:
            for lane in self.lanes:
                mine = [t for t in tickets if t.lane is lane]
                if mine:
                    lane.bridge.submit(mine)
                    submitted.extend(mine)
        except (QueueFull, RuntimeError) as e:
            self.cancel(submitted)  # a batch across models: none of it stays queued
            if isinstance(e, QueueFull):
                raise RequestError(503, f"queue full: {e}", {"Retry-After": str(RETRY_AFTER_S)}) from None
            raise RequestError(503, str(e)) from None
        self.live.update(tickets)
        return tickets

    def _work(self, lane: Lane, puzzle: Puzzle, budget: int | None):
        if budget is None:
            return None
        c = lane.served.config
        work = lane.scaling.work(puzzle.task, puzzle.tokens, budget, next(self._keys), c.seq_len, c.vocab_size)
        work.next_attempt()
        return work

    def cancel(self, tickets: list[Ticket]) -> None:
        """Each ticket cancelled on its own model's engine."""
        for lane in self.lanes:
            mine = [t for t in tickets if t.lane is lane]
            if mine:
                lane.bridge.cancel(mine)

    async def wait(self, tickets: list[Ticket], receive: Callable) -> list[EngineAnswer]:
        """The answers; 504 past the deadline, ClientGone when the client leaves first (either
        way the tickets are cancelled: out of the queue now, out of the engine at its next step)."""
        remaining = max(tickets[0].deadline - time.monotonic(), 0.0)
        answers: asyncio.Future = asyncio.gather(*(t.future for t in tickets))
        gone: asyncio.Future = asyncio.ensure_future(_client_gone(receive))
        try:
            done, _ = await asyncio.wait({answers, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            self.live.difference_update(tickets)
        if answers not in done:
            self.cancel(tickets)  # first: it counts and evicts only tickets not yet done
            answers.cancel()
            if gone in done:
                raise ClientGone()
            raise RequestError(504, f"timeout_s: no answer within {tickets[0].timeout_s:g} s") from None
        try:
            return list(answers.result())
        except RuntimeError as e:  # the engine stopped, or the drain ran out of time
            raise RequestError(503, str(e), {"Connection": "close"} if self.draining else None) from None

    def response(self, puzzle: Puzzle, t: Ticket, sol: EngineAnswer, start: float, steps: bool) -> dict[str, Any]:
        out = t.lane.served.answer(puzzle, sol, steps)
        out["latency_ms"] = round((time.monotonic() - start) * 1000.0, 3)
        out["queue_ms"] = round((t.started - t.submitted) * 1000.0, 3)
        return out

    def answered(self, answers: list[dict[str, Any]]) -> None:
        self.metrics.answered(len(answers), sum(bool(a.get("verified")) for a in answers))

    # ---- draining ------------------------------------------------------------------------------
    def start_drain(self) -> None:
        self.draining = True
        self.metrics.draining.set(1)

    def abort_waiting(self, message: str) -> int:
        """The drain ran out of time: every request still waiting gets 503 now (a stream its
        final `error` event). Returns how many puzzles were abandoned."""
        live = [t for t in self.live if not t.future.done()]
        self.cancel(live)  # first: out of the queue and the engine while still unanswered
        for t in live:
            t.future.set_exception(RuntimeError(message))
            if t.events is not None:
                t.events.put_nowait(("error", message))
        return len(live)


def create_app(lanes: list[Lane], cfg: ServeConfig, metrics: Metrics) -> Gate:
    """The FastAPI app behind its Gate (what uvicorn runs), over one model or several (one per task)."""
    service = Service(lanes, cfg, metrics)
    metrics.slots.set(sum(lane.bridge.engine.slots for lane in lanes))
    metrics.watch(lambda: queue_state(lanes))
    for lane in lanes:
        metrics.model.info(model_labels(lane.served))
    names = " and ".join(f"{lane.served.name} ({lane.served.config.variant})" for lane in lanes)
    # fastapi-offline: /docs and /redoc load Swagger UI / ReDoc from this server, not a CDN
    app = FastAPIOffline(
        title="hrm-eval serve",
        version="1",
        description=f"Solve puzzles with {names}. With --api-key, every /v1 route needs `Authorization: Bearer KEY`.",
        favicon_url="/favicon.ico",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from the validator's site
    )
    install_error_handlers(app)
    add_info_routes(app, service)
    add_solve_routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Gate(app, service)


def serve_scaling(served: ServedModel, cfg: ServeConfig) -> ServeScaling:
    """The server's scaling settings (hrm_eval.serve.scaling), resolved for the served model."""
    c = served.config
    return ServeScaling.from_config(cfg, c.halt_max_steps, served.halting.step_limit(c.halt_max_steps))


def queue_state(lanes: list[Lane]) -> dict[str, int]:
    """The queues of all models together (one model: its own)."""
    states = [lane.bridge.queue_state() for lane in lanes]
    return {k: sum(s[k] for s in states) for k in states[0]}


def get_task_or_422(name: str, where: str) -> Any:
    try:
        return get_task(name)
    except HRMEvalError as e:
        raise RequestError(422, f"{where}task: {e}") from None


def model_labels(served: ServedModel) -> dict[str, str]:
    d = served.describe()
    keys = ("name", "family", "variant", "step", "sha256", "dtype", "task")
    labels = {k: str(d[k]) for k in keys}
    labels["halting"] = d["halting"]["mode"]
    return labels


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(422, validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = f"no route {request.url.path}"
        elif exc.status_code == 405:
            message = f"method: {request.method} not allowed on {request.url.path}"
        elif exc.status_code == 400:  # FastAPI could not read the body (what body_problem lets through)
            return error_response(422, "body: not valid JSON")
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=CLIENT_GONE)  # for the metrics: the connection is already closed

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return error_response(500, "internal error (logged)")  # Starlette then re-raises to the Gate


def add_info_routes(app: FastAPI, service: Service) -> None:
    served, metrics, cfg, lanes = service.served, service.metrics, service.cfg, service.lanes

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.png", media_type="image/png")

    @app.api_route("/health", methods=["GET", "HEAD"], summary="Liveness (200 while alive, also when draining)")
    async def health() -> Response:
        stopped = next((lane.bridge for lane in lanes if not lane.bridge.alive), None)
        if stopped is not None:
            return error_response(503, f"engine stopped: {stopped.error!r}")
        state = "draining" if service.draining else "ok"
        out = {"status": state, "model": served.name, "requests_in_flight": service.requests_in_flight}
        if len(lanes) > 1:
            out["models"] = [lane.served.name for lane in lanes]
        return JSONResponse(out)

    @app.api_route("/ready", methods=["GET", "HEAD"], summary="Readiness (503 while draining)", responses=ERRORS)
    async def ready() -> Response:
        if service.draining:
            return error_response(503, "draining: not taking new requests")
        stopped = next((lane.bridge for lane in lanes if not lane.bridge.alive), None)
        if stopped is not None:
            return error_response(503, f"engine stopped: {stopped.error!r}")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", summary="Prometheus metrics (text format 0.0.4)", response_class=Response)
    async def get_metrics() -> Response:
        return Response(metrics.prometheus(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/stats", summary="Requests, errors, latency percentiles per route, recent puzzles/s", responses=ERRORS)
    async def stats() -> dict[str, Any]:
        out = metrics.snapshot()
        out["queue"] = queue_state(lanes)
        out["engine"] = lanes[0].bridge.stats()
        out["draining"] = service.draining
        if len(lanes) > 1:  # each model's own engine (`engine` above is the first one's)
            out["models"] = [
                {"name": lane.served.name, "queue": lane.bridge.queue_state(), "engine": lane.bridge.stats()}
                for lane in lanes
            ]
        return out

    @app.api_route("/v1/model", methods=["GET", "HEAD"], summary="The served model and limits", responses=ERRORS)
    async def model() -> dict[str, Any]:
        info = lanes[0].info(cfg)
        if len(lanes) > 1:  # a one-model client sees the first model; the page, every task
            info["tasks"] = [t for lane in lanes for t in lane.served.describe()["tasks"]]
            info["models"] = [lane.info(cfg) for lane in lanes]
        return info

    @app.api_route("/v1/models", methods=["GET", "HEAD"], summary="Every served model", responses=ERRORS)
    async def models() -> dict[str, Any]:
        return {"models": [lane.info(cfg) for lane in lanes]}

    @app.get("/v1/puzzles/random", response_model=RandomPuzzle, summary="A test-set puzzle", responses=ERRORS)
    async def random_puzzle(
        task: str | None = Query(None, description="a puzzle of this task (several models); default: the first"),
    ) -> dict[str, Any]:
        lane = service.lane_of_task(task, "") if task is not None and len(lanes) > 1 else lanes[0]
        return lane.served.random_example(service.rng)


def add_solve_routes(app: FastAPI, service: Service) -> None:
    cfg = service.cfg

    @app.post("/v1/solve", response_model=SolveResponse, response_model_exclude_none=True, responses=ERRORS)
    async def solve(req: SolveRequest, request: Request) -> dict[str, Any]:
        """One puzzle in the task's natural form (or tokens) -> the answer in the same form, from
        the model of its task (with several models: of its size, unless `task` names one)."""
        start = time.monotonic()
        lane, puzzle = service.puzzle(req)
        budgets = service.budgets([req.budget], [""], [lane])
        (t,) = service.tickets(
            [(lane, puzzle)], req.timeout_s, want_steps=req.return_steps, stream=False, budgets=budgets
        )
        (sol,) = await service.wait([t], request.receive)
        out = service.response(puzzle, t, sol, start, req.return_steps)
        service.answered([out])
        return out

    @app.post("/v1/solve/batch", response_model=BatchResponse, response_model_exclude_none=True, responses=ERRORS)
    async def solve_batch(req: BatchRequest, request: Request) -> dict[str, Any]:
        """Many puzzles (at most --max-request-puzzles) -> answers in the same order."""
        start = time.monotonic()
        if len(req.puzzles) > cfg.max_request_puzzles:
            raise RequestError(413, f"puzzles: {len(req.puzzles)} puzzles, at most {cfg.max_request_puzzles}")
        routed = [service.puzzle(p, f"puzzles[{i}].") for i, p in enumerate(req.puzzles)]
        asked = [p.budget if p.budget is not None else req.budget for p in req.puzzles]
        where = [f"puzzles[{i}]." if p.budget is not None else "" for i, p in enumerate(req.puzzles)]
        budgets = service.budgets(asked, where, [lane for lane, _ in routed])
        tickets = service.tickets(routed, req.timeout_s, want_steps=req.return_steps, stream=False, budgets=budgets)
        sols = await service.wait(tickets, request.receive)
        answers = [service.response(p, t, s, start, req.return_steps) for (_, p), t, s in zip(routed, tickets, sols)]
        service.answered(answers)
        return {"answers": answers, "latency_ms": round((time.monotonic() - start) * 1000.0, 3)}

    @app.post("/v1/solve/stream", responses=ERRORS, response_class=StreamingResponse)
    async def solve_stream(req: SolveRequest, request: Request) -> StreamingResponse:
        """Server-sent events: `step` (answer and q_halt_probability after each ACT step), then `final`;
        an `error` event (with the status it stands for) ends a stream that gets no answer."""
        lane, puzzle = service.puzzle(req)
        budget = service.budgets([req.budget], [""], [lane])[0]
        return stream(service, lane, puzzle, req.timeout_s, request.scope["hrm.outcome"], budget)

    @app.get("/v1/solve/stream", responses=ERRORS, response_class=StreamingResponse)
    async def solve_stream_get(
        request: Request,
        puzzle: str = Query(..., description="the puzzle as text"),
        task: str | None = None,
        budget: int | None = Query(None, ge=0, description="think harder: the most ACT steps, all attempts"),
    ) -> StreamingResponse:
        """The POST stream for a text puzzle given in the query string."""
        item = PuzzleInput.model_validate({"task": task, "puzzle": puzzle})
        lane, routed = service.puzzle(item)
        budgets = service.budgets([budget], [""], [lane])
        return stream(service, lane, routed, None, request.scope["hrm.outcome"], budgets[0])


def stream(
    service: Service,
    lane: Lane,
    puzzle: Puzzle,
    timeout_s: float | None,
    outcome: Outcome,
    budget: int | None = None,
) -> StreamingResponse:
    (t,) = service.tickets([(lane, puzzle)], timeout_s, want_steps=True, stream=True, budgets=[budget])  # 503 here
    start = time.monotonic()
    return StreamingResponse(
        _events(service, puzzle, t, start, outcome),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(service: Service, puzzle: Puzzle, t: Ticket, start: float, outcome: Outcome) -> AsyncIterator[str]:
    assert t.events is not None
    outcome.status = CLIENT_GONE  # until the stream ends with an answer or an error event
    try:
        served = t.lane.served
        as_read = served.natural(puzzle.task, puzzle.tokens)  # the puzzle as the server read it
        yield _sse("puzzle", {"task": puzzle.task.name if puzzle.task else None, **as_read})
        while True:
            remaining = t.deadline - time.monotonic()
            try:
                kind, payload = await asyncio.wait_for(t.events.get(), max(remaining, 0.0))
            except asyncio.TimeoutError:
                service.cancel([t])
                outcome.status = 504
                yield _sse("error", {"error": "timeout_s: the deadline passed", "status": 504})
                return
            if kind == "step":
                yield _sse("step", served.step_event(puzzle, *payload))
            elif kind == "final":
                out = service.response(puzzle, t, payload, start, False)
                service.answered([out])
                outcome.status = 200
                yield _sse("final", out)
                return
            else:
                outcome.status = 503
                yield _sse("error", {"error": payload, "status": 503})
                return
    finally:
        service.live.discard(t)
        service.cancel([t])  # a client that went away frees its place in the queue


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
