"""The settings of `--mode serve` (one Pydantic model: its defaults are the documented ones)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from hrm_eval.inference.halting import SERVED_HALTING_MODES, ServedHaltingMode, modes_help
from hrm_eval.utils.config import ScalingSettings, setting
from hrm_eval.utils.limits import MAX_BUDGET

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
API_KEY_ENV = "HRM_EVAL_API_KEY"  # a key in the environment stays out of `ps` listings


class ServeConfig(ScalingSettings):
    """Also test-time scaling (ScalingSettings): `scaling` / `budget` are what a request without a
    `"budget"` gets (default off: every answer as without scaling); `max_budget` bounds a request's."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # the flags' --checkpoint, repeatable, fills `checkpoints`; one given is the one-model form (cli.serve)
    checkpoint: str | None = None  # default: the bundled models there, one per task (sudoku6-hard-hrm first)
    checkpoints: list[str] = setting(  # several models, one per task (--checkpoint repeated)
        flag="--checkpoint",
        action="append",
        help="step_<N> file or run directory; repeat it to serve several models, one per task "
        "(default: every bundled model there, one per task)",
        default_factory=list,
    )
    log_file: str | None = None  # JSON lines, one object per log record (appended); flag: the common --log-file
    data_path: str | None = setting(  # default: the run's data/
        None, flag="--data", help="dataset directory for the (first) model's random puzzles"
    )
    host: str = setting(  # localhost only unless you say otherwise
        "127.0.0.1", help="address to listen on; anything but localhost warns unless --api-key is set"
    )
    port: int = setting(  # 0: any free port (the URL line says which)
        8000, ge=0, le=65535, help="port (0: any free port; the first line printed says which)"
    )
    halting: ServedHaltingMode = setting(  # adaptive: easy puzzles leave early, freeing slots
        "adaptive", help=modes_help(SERVED_HALTING_MODES)
    )
    max_batch: int = setting(  # engine slots
        64, ge=1, help="puzzles computed together (engine slots); 1 turns batching off"
    )
    batch_wait_ms: float = setting(2.0, ge=0, le=1000, help="how long an idle engine waits to gather a batch")
    max_queue: int = setting(  # more -> 503 with Retry-After
        1024, ge=1, help="puzzles queued or in flight before 503"
    )
    max_request_puzzles: int = setting(  # in one /v1/solve/batch
        256, ge=1, help="puzzles in one batch request before 413"
    )
    max_body_bytes: int = setting(1 << 20, ge=1024, help="request body size before 413")
    timeout_s: float = setting(  # a request's deadline (a request may ask for less)
        30.0, gt=0, flag="--timeout", help="seconds before a request gets 504"
    )
    # SIGTERM / SIGINT: finish in-flight requests for up to this long (default: timeout_s, so that a
    # request admitted just before the signal can still get its answer), then 503 the rest and exit 0
    drain_timeout_s: float | None = setting(
        None,
        ge=0,
        flag="--drain-timeout",
        help="on SIGTERM/SIGINT, seconds to finish in-flight requests before 503 (default: --timeout)",
    )
    # Slow clients: a request's headers must arrive within header_timeout_s of the connection (or of
    # the previous response) and its body within body_timeout_s of the headers; else 408 and close.
    header_timeout_s: float = setting(10.0, gt=0, flag="--header-timeout", help="seconds to send headers (408)")
    body_timeout_s: float = setting(10.0, gt=0, flag="--body-timeout", help="seconds to send the body (408)")
    max_connections: int = setting(  # one more gets 503 and is closed
        1024, ge=1, help="open connections before 503"
    )
    # With a key every /v1 route needs `Authorization: Bearer KEY`. A secret: left out of
    # model_dump() and repr, so that settings written to logs or results never carry it.
    api_key: str | None = setting(
        None,
        exclude=True,
        repr=False,
        help=f"require `Authorization: Bearer KEY` on /v1 (or set ${API_KEY_ENV})",
    )
    device: str = setting("auto", help="auto | cpu | cuda | cuda:N | mps")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = setting("auto")
    threads: int | None = setting(  # see engine_threads
        None, ge=1, help="CPU threads of the engine (default: one per core)"
    )
    # the flags of ModelFlags (cli.serve adds them); here without its torch-importing name check
    model_config_path: str | None = None
    arch_overrides: dict[str, Any] = Field(default_factory=dict)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"  # flag: the common --log-level
    # the most ACT steps a request's "budget" may ask for (default 8 x halt_max_steps); more -> 422
    max_budget: int | None = setting(
        None, ge=1, le=MAX_BUDGET, help='the most ACT steps a request\'s "budget" may ask for (8 x halt_max_steps)'
    )

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
