"""What reaches the app at all: connections, headers and nesting, checked before any parsing.

`GuardedH11Protocol` is uvicorn's HTTP/1.1 protocol with three additions (uvicorn has no header
timeout and answers its own limits in plain text):
  - a request's headers must be complete within `header_timeout_s` of the connection opening
    (on a keep-alive connection: of the next request's first byte; an idle one is uvicorn's
    keep-alive timeout's, which closes it silently): else 408 JSON and the connection is closed
    (a slowloris client that sends a byte a second holds nothing for long);
  - at most `max_connections` open connections: one more gets 503 JSON and is closed at once;
  - a request h11 cannot read (bad syntax, headers over its size limit, a non-ASCII path) gets
    400 JSON, not plain text (and never an exception in the event loop).

`json_depth` measures how deeply a JSON text nests without parsing it, so that a body or a
puzzle string of a thousand `[` is refused (422) before a recursive parser sees it.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import numpy as np
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_JSON_DEPTH = 32  # the deepest legitimate request is 5 ({"puzzles": [{"grid": [[...]]}]})
# a JSON string (quotes and escapes included), written as an unrolled loop: linear, no backtracking
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def json_depth(text: bytes | str) -> int:
    """The deepest nesting of arrays and objects in `text` (brackets inside strings do not count).
    Linear in the size and vectorised: a 1 MB body takes milliseconds."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    outside = _STRING.sub(b"", raw)
    if not outside:
        return 0
    steps = _OPEN[np.frombuffer(outside, dtype=np.uint8)].astype(np.int32)
    return int(max(np.cumsum(steps).max(), 0))


def raw_json_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with the API's JSON error shape, for answers given below the
    app (where h11's state machine cannot send one: no request has been read)."""
    body = json.dumps({"error": message, "status": status}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout, a connection cap and JSON 400s. The limits are
    class attributes, set by `guarded_protocol` (uvicorn builds one protocol per connection)."""

    header_timeout_s: float = 10.0
    max_connections: int = 1024
    on_refused: Any = None  # called with the reason ("header_timeout", "max_connections", "bad_request")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over = len(self.connections) >= self.max_connections  # counted before this one joins
        super().connection_made(transport)
        if over:
            self._refuse(503, "Service Unavailable", f"connections: more than {self.max_connections} open")
            self._count("max_connections")
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._between_requests and self._header_timer is None:
            self._arm()  # the first bytes of the next request on a keep-alive connection
        super().data_received(data)
        if not self._between_requests:
            self._disarm()  # a request's headers are in: the body has its own timeout (the app's)

    def handle_events(self) -> None:
        try:
            super().handle_events()
        except UnicodeDecodeError:  # uvicorn decodes the path as ASCII
            self.send_400_response("path: not ASCII")

    def send_400_response(self, msg: str) -> None:
        self._count("bad_request")
        self._refuse(400, "Bad Request", f"request: not valid HTTP/1.1 ({msg.rstrip('.')})")

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._between_requests:
            return
        self._count("header_timeout")
        self._refuse(408, "Request Timeout", f"headers: not received within {self.header_timeout_s:g} s")

    def _refuse(self, status: int, reason: str, message: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(raw_json_response(status, reason, message))
            self.transport.close()

    def _count(self, reason: str) -> None:
        if self.on_refused is not None:
            self.on_refused(reason)


def guarded_protocol(header_timeout_s: float, max_connections: int, on_refused: Any = None) -> type:
    """A GuardedH11Protocol class with these limits (what uvicorn.Config(http=...) takes)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout_s": header_timeout_s,
            "max_connections": max_connections,
            "on_refused": staticmethod(on_refused) if on_refused is not None else None,
        },
    )
