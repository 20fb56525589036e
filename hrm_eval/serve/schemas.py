"""Request and response bodies of the HTTP API (they are also the OpenAPI page at /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

EXAMPLE: JsonDict = {"task": "sudoku6", "puzzle": "356.2..24.366..3422.36514312.556.4.."}


class PuzzleInput(BaseModel):
    """One puzzle: exactly one of `puzzle` (the task's natural form, e.g. the CSV question
    string of a Sudoku), `grid` (rows of numbers, e.g. an ARC grid) or `tokens` (the model's
    input token ids)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    task: str | None = Field(None, description="task name (sudoku6, arc, ...); default: the model's task")
    puzzle: Any | None = Field(None, description="the puzzle as text, or rows (the task reads it)")
    grid: list[list[int]] | None = Field(None, description="the puzzle as rows of numbers")
    tokens: list[int] | None = Field(None, description="the model's input token ids [seq_len]")
    puzzle_identifier: int = Field(0, ge=0, description="puzzle embedding id (0: the blank identifier)")
    budget: int | None = Field(
        None,
        ge=0,
        description="think harder: the most ACT steps over all attempts (at most the server's max_budget, "
        "GET /v1/model); an answer that breaks the task's rules thinks on, then again on views of the "
        "puzzle, until one passes. 0: no scaling; absent: the server's default (--scaling, --budget)",
    )

    @model_validator(mode="after")
    def _one_form(self) -> PuzzleInput:
        given = [k for k in ("puzzle", "grid", "tokens") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of puzzle, grid, tokens (got {', '.join(given) or 'none'})")
        return self


class SolveRequest(PuzzleInput):
    return_steps: bool = Field(False, description="also return the answer after every ACT step")
    timeout_s: float | None = Field(None, gt=0, description="deadline in seconds (at most the server's)")


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"puzzles": [EXAMPLE, {"puzzle": EXAMPLE["puzzle"]}]}]}
    )

    puzzles: list[PuzzleInput] = Field(..., min_length=1, description="answered in this order")
    return_steps: bool = False
    budget: int | None = Field(None, ge=0, description="the budget of every puzzle that gives none")
    timeout_s: float | None = Field(None, gt=0)


class StepAnswer(BaseModel):
    step: int = Field(..., description="ACT steps so far (with a budget: over all attempts)")
    attempt: int | None = Field(None, description="with a budget: the attempt this step belongs to")
    answer: str | None = None
    grid: list[list[int]] | None = None
    tokens: list[int] | None = None
    q_halt_probability: float


class SolveResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "task": "sudoku6",
                    "answer": "356124124536615342243651431265562413",
                    "verified": True,
                    "steps": 3,
                    "q_halt_probability": 0.99,
                    "model": "sudoku6-hard-hrm/step_11250",
                    "latency_ms": 12.5,
                    "queue_ms": 0.4,
                }
            ]
        }
    )

    task: str | None = Field(None, description="the task the answer is written in")
    answer: str | None = Field(None, description="the answer in the task's text form")
    grid: list[list[int]] | None = Field(None, description="the answer as rows of numbers (ARC)")
    tokens: list[int] | None = Field(None, description="answer token ids (when the request sent tokens)")
    verified: bool | None = Field(None, description="the task's rule check of the answer (None: no task)")
    steps: int = Field(..., description="ACT steps the model took (with a budget: those of the chosen attempt)")
    q_halt_probability: float = Field(..., description="sigmoid(q_halt) at the last step: the model's confidence")
    attempts: int | None = Field(None, description="with a budget: attempts run")
    act_steps_total: int | None = Field(None, description="with a budget: ACT steps over all attempts")
    solved_at_attempt: int | None = Field(
        None, description="with a budget: the attempt whose answer passed the rule check (absent: none did)"
    )
    selected_by: str | None = Field(None, description="with a budget: verified, vote (over attempts) or q")
    budget: int | None = Field(
        None, description="the ACT steps the puzzle was allowed (one attempt's when its givens break the rules)"
    )
    by_step: list[StepAnswer] | None = None
    model: str
    latency_ms: float = Field(..., description="time in the server, from arrival to answer")
    queue_ms: float = Field(..., description="time waiting for an engine slot")


class BatchResponse(BaseModel):
    answers: list[SolveResponse]
    latency_ms: float


class ErrorResponse(BaseModel):
    error: str = Field(..., description="one line: the field and what is wrong with it")
    status: int


class RandomPuzzle(BaseModel):
    index: int
    task: str | None
    puzzle: str | list[Any] | None = None
    solution: str | list[Any] | None = None
    tokens: list[int]


ModelInfo = dict[str, Any]
