"""The HTTP app: routes, error handling, the API key, body limits, the page.

    GET  /                   the page (static/index.html)
    GET  /health             liveness: 200 while the engine thread runs
    GET  /metrics            requests, errors, latency percentiles, puzzles/s, batching
    GET  /v1/model           family, variant, layout, checkpoint sha256, dtype, halting
    GET  /v1/puzzles/random  a puzzle of the test set (and its solution), for the page
    POST /v1/solve           one puzzle -> its answer
    POST /v1/solve/batch     many puzzles -> answers in order
    POST /v1/solve/stream    server-sent events: `puzzle` (as read), one `step` per ACT step, `final`
    GET  /v1/solve/stream    the same with ?puzzle=...&task=... (for curl and EventSource)

Every error is JSON `{"error": "<field>: <reason>", "status": N}`; nothing a client sends
can make a handler raise past these handlers (a 500 would be a bug).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, MutableMapping, Optional

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from hrm_eval.serve.config import ServeConfig
from hrm_eval.serve.metrics import Metrics
from hrm_eval.serve.model import Puzzle, RequestError, ServedModel, Solution
from hrm_eval.serve.scheduler import BatchScheduler, QueueFull, Ticket
from hrm_eval.serve.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    PuzzleInput,
    RandomPuzzle,
    SolveRequest,
    SolveResponse,
)

STATIC = Path(__file__).parent / "static"
RETRY_AFTER_S = 1  # a full queue drains within about a second at the engine's throughput
ROUTES = ("/", "/health", "/metrics", "/v1/model", "/v1/puzzles/random", "/v1/solve", "/v1/solve/batch")
ERRORS: Dict[int | str, Dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in (
        (401, "missing or wrong API key (with --api-key)"),
        (413, "body or batch too large"),
        (422, "malformed JSON or a wrong puzzle: the field and the reason"),
        (503, "queue full: retry after Retry-After seconds"),
        (504, "the request's deadline passed"),
    )
}


def error_response(status: int, message: str, headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    """The first problem as `field: reason`, the field written as the client wrote it."""
    err = exc.errors()[0]
    loc = [str(x) for x in err.get("loc", ()) if x != "body"]
    if err.get("type") == "json_invalid":
        return f"body: not valid JSON ({err.get('ctx', {}).get('error', err['msg'])})"
    field = "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc).lstrip(".") or "body"
    return f"{field}: {err['msg'].removeprefix('Value error, ')}"


class Gate:
    """ASGI middleware in front of every route: the API key for /v1, the body limit, metrics.
    Done before routing so that no handler ever sees an unauthorised or oversized request."""

    def __init__(self, app: Any, *, api_key: Optional[str], max_body: int, metrics: Metrics):
        self.app, self.api_key, self.max_body, self.metrics = app, api_key, max_body, metrics

    async def __call__(self, scope: Dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, path, status = time.perf_counter(), scope["path"], [500]

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if self.api_key is not None and path.startswith("/v1") and not self._authorised(headers):
                response = error_response(401, "Authorization: send `Bearer <key>`", {"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, sending)
            body = await self._read_body(headers, receive)
            if body is None:
                return await error_response(413, f"body: larger than {self.max_body} bytes")(scope, receive, sending)
            await self.app(scope, _replay(body, receive), sending)
        finally:
            route = path if path in ROUTES or path == "/v1/solve/stream" else "other"
            self.metrics.request(route, status[0], time.perf_counter() - start, path.startswith("/v1/solve"))

    def _authorised(self, headers: Dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        assert self.api_key is not None
        # compare_digest: the time taken does not tell how much of a guess was right
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    async def _read_body(self, headers: Dict[str, str], receive: Callable) -> Optional[bytes]:
        """The whole body, or None when it is over the limit (by its Content-Length or as read)."""
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return None
        chunks: List[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Callable) -> Callable[[], Awaitable[Dict[str, Any]]]:
    sent = False

    async def replay() -> Dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: disconnects, which a stream listens for

    return replay


class Service:
    """The handlers' shared state: the model, the scheduler, the limits, the metrics."""

    def __init__(self, served: ServedModel, scheduler: BatchScheduler, cfg: ServeConfig, metrics: Metrics):
        self.served, self.scheduler, self.cfg, self.metrics = served, scheduler, cfg, metrics
        self.rng = np.random.default_rng()

    def tickets(self, puzzles: List[Puzzle], timeout_s: Optional[float], *, want_steps: bool, stream: bool):
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + min(timeout_s or self.cfg.timeout_s, self.cfg.timeout_s)
        tickets = [
            Ticket(
                p.tokens,
                p.identifier,
                deadline,
                loop,
                want_steps=want_steps,
                events=asyncio.Queue() if stream else None,
            )
            for p in puzzles
        ]
        try:
            self.scheduler.submit(tickets)
        except QueueFull as e:
            raise RequestError(503, f"queue full: {e}", {"Retry-After": str(RETRY_AFTER_S)}) from None
        except RuntimeError as e:
            raise RequestError(503, str(e)) from None
        return tickets

    async def wait(self, tickets: List[Ticket]) -> List[Solution]:
        remaining = tickets[0].deadline - time.monotonic()
        try:
            solutions = await asyncio.wait_for(asyncio.gather(*(t.future for t in tickets)), max(remaining, 0.0))
        except asyncio.TimeoutError:
            self.scheduler.cancel(tickets)
            raise RequestError(504, f"timeout_s: no answer within {self._timeout(tickets):.3g} s") from None
        except RuntimeError as e:  # the engine thread stopped
            raise RequestError(503, str(e)) from None
        self.metrics.solved(len(solutions))
        return list(solutions)

    def _timeout(self, tickets: List[Ticket]) -> float:
        return tickets[0].deadline - tickets[0].submitted

    def response(self, puzzle: Puzzle, t: Ticket, sol: Solution, start: float, steps: bool) -> Dict[str, Any]:
        out = self.served.answer(puzzle, sol, steps)
        out["latency_ms"] = round((time.monotonic() - start) * 1000.0, 3)
        out["queue_ms"] = round((t.started - t.submitted) * 1000.0, 3)
        return out


def create_app(served: ServedModel, scheduler: BatchScheduler, cfg: ServeConfig) -> Gate:
    """The FastAPI app behind its Gate (what uvicorn runs)."""
    metrics = Metrics()
    service = Service(served, scheduler, cfg, metrics)
    app = FastAPI(
        title="hrm-eval serve",
        version="1",
        description=f"Solve puzzles with {served.name} ({served.config.variant}). With --api-key, every /v1 "
        "route needs `Authorization: Bearer KEY`.",
    )
    install_error_handlers(app)
    add_info_routes(app, service)
    add_solve_routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Gate(app, api_key=cfg.api_key, max_body=cfg.max_body_bytes, metrics=metrics)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"no route {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, message, getattr(exc, "headers", None))


def add_info_routes(app: FastAPI, service: Service) -> None:
    served, scheduler, metrics = service.served, service.scheduler, service.metrics

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/health", summary="Liveness")
    async def health() -> JSONResponse:
        if not scheduler.alive:
            return error_response(503, f"engine stopped: {scheduler.error!r}")
        return JSONResponse({"status": "ok", "model": served.name})

    @app.get("/metrics", summary="Requests, errors, latency percentiles, batch occupancy, puzzles/s")
    async def get_metrics() -> Dict[str, Any]:
        out = metrics.snapshot()
        out["queue"] = scheduler.queue_state()
        out["engine"] = scheduler.stats()
        return out

    @app.get("/v1/model", summary="The served model", responses=ERRORS)
    async def model() -> Dict[str, Any]:
        info = served.describe()
        info["max_batch"] = scheduler.engine.slots
        return info

    @app.get("/v1/puzzles/random", response_model=RandomPuzzle, summary="A test-set puzzle", responses=ERRORS)
    async def random_puzzle() -> Dict[str, Any]:
        return served.random_example(service.rng)


def add_solve_routes(app: FastAPI, service: Service) -> None:
    served, cfg = service.served, service.cfg

    @app.post("/v1/solve", response_model=SolveResponse, response_model_exclude_none=True, responses=ERRORS)
    async def solve(req: SolveRequest) -> Dict[str, Any]:
        """One puzzle in the task's natural form (or tokens) -> the answer in the same form."""
        start = time.monotonic()
        puzzle = served.puzzle(req)
        (t,) = service.tickets([puzzle], req.timeout_s, want_steps=req.return_steps, stream=False)
        (sol,) = await service.wait([t])
        return service.response(puzzle, t, sol, start, req.return_steps)

    @app.post("/v1/solve/batch", response_model=BatchResponse, response_model_exclude_none=True, responses=ERRORS)
    async def solve_batch(req: BatchRequest) -> Dict[str, Any]:
        """Many puzzles (at most --max-request-puzzles) -> answers in the same order."""
        start = time.monotonic()
        if len(req.puzzles) > cfg.max_request_puzzles:
            raise RequestError(413, f"puzzles: {len(req.puzzles)} puzzles, at most {cfg.max_request_puzzles}")
        puzzles = [served.puzzle(p, f"puzzles[{i}].") for i, p in enumerate(req.puzzles)]
        tickets = service.tickets(puzzles, req.timeout_s, want_steps=req.return_steps, stream=False)
        sols = await service.wait(tickets)
        answers = [service.response(p, t, s, start, req.return_steps) for p, t, s in zip(puzzles, tickets, sols)]
        return {"answers": answers, "latency_ms": round((time.monotonic() - start) * 1000.0, 3)}

    @app.post("/v1/solve/stream", responses=ERRORS, response_class=StreamingResponse)
    async def solve_stream(req: SolveRequest) -> StreamingResponse:
        """Server-sent events: `step` (answer and q_halt_probability after each ACT step), then `final`."""
        return stream(service, served.puzzle(req), req.timeout_s)

    @app.get("/v1/solve/stream", responses=ERRORS, response_class=StreamingResponse)
    async def solve_stream_get(
        puzzle: str = Query(..., description="the puzzle as text"), task: Optional[str] = None
    ) -> StreamingResponse:
        """The POST stream for a text puzzle given in the query string."""
        return stream(service, served.puzzle(PuzzleInput.model_validate({"task": task, "puzzle": puzzle})), None)


def stream(service: Service, puzzle: Puzzle, timeout_s: Optional[float]) -> StreamingResponse:
    (t,) = service.tickets([puzzle], timeout_s, want_steps=True, stream=True)  # 503 here, before the stream
    start = time.monotonic()
    return StreamingResponse(
        _events(service, puzzle, t, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(service: Service, puzzle: Puzzle, t: Ticket, start: float) -> AsyncIterator[str]:
    assert t.events is not None
    try:
        as_read = service.served.natural(puzzle.task, puzzle.tokens)  # the puzzle as the server read it
        yield _sse("puzzle", {"task": puzzle.task.name if puzzle.task else None, **as_read})
        while True:
            remaining = t.deadline - time.monotonic()
            try:
                kind, payload = await asyncio.wait_for(t.events.get(), max(remaining, 0.0))
            except asyncio.TimeoutError:
                service.scheduler.cancel([t])
                yield _sse("error", {"error": "timeout_s: the deadline passed", "status": 504})
                return
            if kind == "step":
                yield _sse("step", service.served.step_event(puzzle, *payload))
            elif kind == "final":
                service.metrics.solved(1)
                yield _sse("final", service.response(puzzle, t, payload, start, False))
                return
            else:
                yield _sse("error", {"error": payload, "status": 503})
                return
    finally:
        service.scheduler.cancel([t])  # a client that went away frees its place in the queue


def _sse(event: str, data: Dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
