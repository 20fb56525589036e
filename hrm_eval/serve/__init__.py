"""`--mode serve`: an HTTP API (FastAPI + uvicorn, the `serve` extra) over the ACT engine.

Concurrent requests share the engine's slots (dynamic batching: `bridge.EngineBridge`),
puzzles are read and written in their task's natural form through the task registry
(`model.ServedModel`), and a page at `/` (static/, no build step, no network) shows the model
solving step by step. Several models may be served at once, one per task (`app.Lane`: each its
own engine and slots); a request goes to the model of its task, i.e. of its puzzle's size.

    config.py     ServeConfig: the mode's settings
    model.py      the checkpoint, its task, request <-> tokens
    bridge.py     between HTTP requests and the engine: its thread and the live queue it pulls from
    app.py        routes, routing to a model, errors, API key, body limits, draining, the page
    guard.py      below the app: header timeout, connection cap, JSON nesting depth
    metrics.py    what /metrics (Prometheus) and /v1/stats (JSON) report
    server.py     build the app, bind the socket, run uvicorn, drain on SIGTERM
"""

from hrm_eval.serve.config import ServeConfig

__all__ = ["ServeConfig"]
