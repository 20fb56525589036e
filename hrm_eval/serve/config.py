"""The settings of `--mode serve` (one Pydantic model: its defaults are the documented ones)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from hrm_eval.inference.halting import ServedHaltingMode
from hrm_eval.utils.config import ScalingSettings
from hrm_eval.utils.limits import MAX_BUDGET

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServeConfig(ScalingSettings):
    """Also test-time scaling (ScalingSettings): `scaling` / `budget` are what a request without a
    `"budget"` gets (default off: every answer as without scaling); `max_budget` bounds a request's."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    checkpoint: str | None = None  # default: the bundled models there, one per task (sudoku6-hard-hrm first)
    checkpoints: list[str] = Field(default_factory=list)  # several models, one per task (--checkpoint repeated)
    log_file: str | None = None  # JSON lines, one object per log record (appended)
    data_path: str | None = None  # dataset for the page's random puzzles; default: the run's data/
    host: str = "127.0.0.1"  # localhost only unless you say otherwise
    port: int = Field(8000, ge=0, le=65535)  # 0: any free port (the URL line says which)
    halting: ServedHaltingMode = "adaptive"  # adaptive: easy puzzles leave early, freeing slots
    max_batch: int = Field(64, ge=1)  # engine slots: puzzles computed together; 1 turns batching off
    batch_wait_ms: float = Field(2.0, ge=0, le=1000)  # an idle engine waits this long to gather a batch
    max_queue: int = Field(1024, ge=1)  # puzzles queued or in flight; more -> 503 with Retry-After
    max_request_puzzles: int = Field(256, ge=1)  # puzzles in one /v1/solve/batch; more -> 413
    max_body_bytes: int = Field(1 << 20, ge=1024)  # request body limit; more -> 413
    timeout_s: float = Field(30.0, gt=0)  # a request's deadline (a request may ask for less); past it -> 504
    # SIGTERM / SIGINT: finish in-flight requests for up to this long (default: timeout_s, so that a
    # request admitted just before the signal can still get its answer), then 503 the rest and exit 0
    drain_timeout_s: float | None = Field(None, ge=0)
    # Slow clients: a request's headers must arrive within header_timeout_s of the connection (or of
    # the previous response) and its body within body_timeout_s of the headers; else 408 and close.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(10.0, gt=0)
    max_connections: int = Field(1024, ge=1)  # open connections; one more gets 503 and is closed
    # With a key every /v1 route needs `Authorization: Bearer KEY`. A secret: left out of
    # model_dump() and repr, so that settings written to logs or results never carry it.
    api_key: str | None = Field(None, exclude=True, repr=False)
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = "auto"
    threads: int | None = Field(None, ge=1)  # engine CPU threads (default: one per core, see engine_threads)
    model_config_path: str | None = None
    arch_overrides: dict[str, Any] = Field(default_factory=dict)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # the most ACT steps a request's "budget" may ask for (default 8 x halt_max_steps); more -> 422
    max_budget: int | None = Field(None, ge=1, le=MAX_BUDGET)

    @model_validator(mode="after")
    def _check(self) -> ServeConfig:
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be empty")
        if self.max_request_puzzles > self.max_queue:
            raise ValueError(f"max_request_puzzles {self.max_request_puzzles} exceeds max_queue {self.max_queue}")
        if self.budget is not None and self.max_budget is not None and self.budget > self.max_budget:
            raise ValueError(f"budget {self.budget} exceeds max_budget {self.max_budget}")
        return self

    @property
    def drain_s(self) -> float:
        return self.timeout_s if self.drain_timeout_s is None else self.drain_timeout_s

    def limits(self, max_budget: int | None = None) -> dict[str, Any]:
        """The limits a client may run into (in /v1/model and the startup line); `max_budget`:
        the resolved bound of a request's "budget" (the model's default when not set)."""
        out = {
            "timeout_s": self.timeout_s,
            "drain_timeout_s": self.drain_s,
            "header_timeout_s": self.header_timeout_s,
            "body_timeout_s": self.body_timeout_s,
            "max_connections": self.max_connections,
            "max_queue": self.max_queue,
            "max_request_puzzles": self.max_request_puzzles,
            "max_body_bytes": self.max_body_bytes,
        }
        bound = self.max_budget if self.max_budget is not None else max_budget
        if bound is not None:
            out["max_budget"] = bound
        return out

    @property
    def local_only(self) -> bool:
        return self.host in LOCAL_HOSTS
