"""What the server reports: `GET /metrics` (Prometheus text format) and `GET /v1/stats` (JSON).

Prometheus names (all prefixed `hrm_serve_`; counters end in `_total`, times are in seconds):
    http_requests_total{route,method,status}   every response; a stream counts with the status it
                                               ended with (an in-stream 504 is a 504)
    http_request_duration_seconds{route}       histogram per route (streams: until their last event)
    refused_connections_total{reason}          below the app: header_timeout, max_connections, bad_request
    internal_errors_total                      the last-resort 500s (a bug each)
    queue_depth                                puzzles waiting for a slot
    queue_pending                              waiting + in the engine (what max_queue bounds)
    slots_in_use / slots                       engine slots busy / there are
    batch_size                                 histogram: puzzles computed per engine step
    act_steps                                  histogram: ACT steps each puzzle took (plain runs)
    attempts                                   histogram: attempts per puzzle solved with a budget
    scaled_act_steps                           histogram: ACT steps over all attempts of such a puzzle
    puzzles_solved_by_retry_total              such puzzles whose verified answer came from attempt 2 or later
    puzzles_solved_total / puzzles_verified_total / puzzles_cancelled_total
    draining                                   1 from SIGTERM until exit
    model_info{name,family,variant,...}        1 per served model, with the model in its labels

`/v1/stats` keeps the JSON view for people: counts, latency percentiles per route kind over the
most recent requests, and puzzles/s over the last RATE_WINDOW_S seconds (not a lifetime average).
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import InfoMetricFamily

PREFIX = "hrm_serve_"
WINDOW = 4096  # latencies kept per route kind for the percentiles of /v1/stats
RATE_WINDOW_S = 10.0  # /v1/stats puzzles_per_s: over this many recent seconds
# request latency buckets (s): a single solve takes ~10 ms idle, a full queue some seconds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)


class Metrics:
    """Thread-safe (the engine thread observes batch sizes and ACT steps)."""

    def __init__(self, act_step_limit: int = 16) -> None:
        self.started = time.monotonic()
        self.registry = CollectorRegistry()
        r, p = self.registry, PREFIX
        self.requests = Counter(p + "http_requests", "HTTP responses", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            p + "http_request_duration_seconds", "time in the server", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.refused = Counter(p + "refused_connections", "connections refused below the app", ["reason"], registry=r)
        self.internal = Counter(p + "internal_errors", "unexpected exceptions answered 500", registry=r)
        self.queue_depth = Gauge(p + "queue_depth", "puzzles waiting for a slot", registry=r)
        self.queue_pending = Gauge(p + "queue_pending", "puzzles waiting or in the engine", registry=r)
        self.slots_in_use = Gauge(p + "slots_in_use", "engine slots computing a puzzle", registry=r)
        self.slots = Gauge(p + "slots", "engine slots (max batch)", registry=r)
        self.batch = Histogram(p + "batch_size", "puzzles per engine step", buckets=BATCH_BUCKETS, registry=r)
        self.act_steps = Histogram(
            p + "act_steps",
            "ACT steps per puzzle (without a budget)",
            buckets=tuple(range(1, act_step_limit + 1)),
            registry=r,
        )
        self.attempts = Histogram(
            p + "attempts", "attempts per puzzle solved with a budget", buckets=ATTEMPT_BUCKETS, registry=r
        )
        self.scaled_act_steps = Histogram(
            p + "scaled_act_steps",
            "ACT steps over all attempts of a puzzle solved with a budget",
            buckets=tuple(b * act_step_limit for b in (1, 2, 4, 8, 16, 32)),
            registry=r,
        )
        self.solved_by_retry = Counter(
            p + "puzzles_solved_by_retry", "budgeted puzzles verified at attempt 2 or later", registry=r
        )
        self.solved = Counter(p + "puzzles_solved", "puzzles answered", registry=r)
        self.verified = Counter(p + "puzzles_verified", "answers the task's rules accept", registry=r)
        self.cancelled = Counter(p + "puzzles_cancelled", "puzzles whose request gave up", registry=r)
        self.draining = Gauge(p + "draining", "1 while the server drains before exit", registry=r)
        self.model = ModelInfo(p + "model", "the served model", r)
        self._lock = threading.Lock()
        self._statuses: Tally = Tally()
        self._routes: Tally = Tally()
        self._latency: dict[str, deque[float]] = {}
        self._answered: deque[tuple[float, int]] = deque()  # (time, puzzles) of recent answers
        self.puzzles = 0

    # ---- observations --------------------------------------------------------------------------
    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        with self._lock:
            self._routes[route] += 1
            self._statuses[status] += 1
            if status == 200:
                self._latency.setdefault(route, deque(maxlen=WINDOW)).append(seconds)

    def scaled(self, attempts: int, act_steps_total: int, solved_at_attempt: int | None) -> None:
        """A puzzle solved with test-time scaling was decided (engine thread)."""
        self.attempts.observe(attempts)
        self.scaled_act_steps.observe(act_steps_total)
        if solved_at_attempt is not None and solved_at_attempt > 1:
            self.solved_by_retry.inc()

    def refused_connection(self, reason: str) -> None:
        self.refused.labels(reason).inc()

    def answered(self, n: int, verified: int) -> None:
        self.solved.inc(n)
        self.verified.inc(verified)
        now = time.monotonic()
        with self._lock:
            self.puzzles += n
            self._answered.append((now, n))
            while self._answered and self._answered[0][0] < now - RATE_WINDOW_S:
                self._answered.popleft()

    def watch(self, queue: Callable[[], dict[str, int]]) -> None:
        """Gauges read at scrape time from the engine bridge."""
        self.queue_depth.set_function(lambda: queue()["waiting"])
        self.queue_pending.set_function(lambda: queue()["pending"])
        self.slots_in_use.set_function(lambda: queue()["in_engine"])

    # ---- reports ---------------------------------------------------------------------------------
    def prometheus(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            recent = sum(n for t, n in self._answered if t >= now - RATE_WINDOW_S)
            uptime = now - self.started
            return {
                "uptime_s": round(uptime, 3),
                "requests": sum(self._routes.values()),
                "requests_by_route": dict(self._routes),
                "errors": sum(c for s, c in self._statuses.items() if s >= 400),
                "responses_by_status": {str(k): v for k, v in sorted(self._statuses.items())},
                "latency_ms": {route: _percentiles(lat) for route, lat in sorted(self._latency.items())},
                "puzzles": self.puzzles,
                "puzzles_per_s": round(recent / min(RATE_WINDOW_S, max(uptime, 1e-9)), 3),
                "puzzles_per_s_window_s": RATE_WINDOW_S,
            }


class ModelInfo:
    """prometheus_client's Info with one sample per served model (Info holds one label set):
    with one model its output is Info's, byte for byte."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry):
        self.name, self.documentation = name, documentation
        self.models: list[dict[str, str]] = []
        registry.register(self)

    def info(self, labels: dict[str, str]) -> None:
        self.models.append(dict(labels))

    def collect(self) -> Iterator[InfoMetricFamily]:
        family = InfoMetricFamily(self.name, self.documentation)
        for labels in self.models:
            family.add_metric([], labels)
        yield family


def _percentiles(latencies: deque[float]) -> dict[str, Any]:
    """p50/p95/p99 in ms of a route's most recent answered requests (200s only)."""
    lat = np.asarray(latencies, dtype=np.float64) * 1000.0
    out: dict[str, Any] = {f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 95, 99)}
    out["count"] = int(lat.size)
    return out
