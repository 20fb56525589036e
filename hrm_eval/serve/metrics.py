"""What `GET /metrics` reports: requests, errors, latency percentiles, throughput, batching."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any, Deque, Dict, Tuple

import numpy as np

WINDOW = 4096  # latencies kept for the percentiles (the most recent solve requests)
RATE_WINDOW_S = 10.0  # puzzles per second over this many recent seconds


class Metrics:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # route -> count
        self.statuses: Counter = Counter()  # status code -> count
        self._latency: Deque[float] = deque(maxlen=WINDOW)  # seconds, solve routes only
        self._solved: Deque[Tuple[float, int]] = deque()  # (time, puzzles) of recent answers
        self.puzzles = 0

    def request(self, route: str, status: int, seconds: float, solve: bool) -> None:
        with self._lock:
            self.requests[route] += 1
            self.statuses[status] += 1
            if solve and status == 200:
                self._latency.append(seconds)

    def solved(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.puzzles += n
            self._solved.append((now, n))
            while self._solved and self._solved[0][0] < now - RATE_WINDOW_S:
                self._solved.popleft()

    def snapshot(self) -> Dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            lat = np.asarray(self._latency, dtype=np.float64) * 1000.0
            recent = sum(n for t, n in self._solved if t >= now - RATE_WINDOW_S)
            uptime = now - self.started
            errors = sum(c for s, c in self.statuses.items() if s >= 400)
            return {
                "uptime_s": round(uptime, 3),
                "requests": sum(self.requests.values()),
                "requests_by_route": dict(self.requests),
                "errors": errors,
                "responses_by_status": {str(k): v for k, v in sorted(self.statuses.items())},
                "latency_ms": {
                    f"p{q}": round(float(np.percentile(lat, q)), 3) if lat.size else None for q in (50, 95, 99)
                }
                | {"count": int(lat.size)},
                "puzzles": self.puzzles,
                "puzzles_per_s": round(self.puzzles / uptime, 3) if uptime > 0 else 0.0,
                f"puzzles_per_s_last_{int(RATE_WINDOW_S)}s": round(recent / min(RATE_WINDOW_S, max(uptime, 1e-9)), 3),
            }
