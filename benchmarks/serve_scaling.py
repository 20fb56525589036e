"""Thinking harder through the server: the held-out puzzles of the default model, with and
without a request "budget", side by side (README: Serve, "Thinking harder").

    python benchmarks/serve_scaling.py                      # budgets none, 32, 64 on 19-27 blanks
    python benchmarks/serve_scaling.py --budgets 0,16,64 --limit 200

Starts `deploy.py --mode serve --port 0` on localhost (float32, the bundled sudoku6-hard-hrm),
posts the puzzles of `checkpoints/sudoku6-hard-hrm/raw/heldout.csv` with at least --min-blanks
blanks to /v1/solve/batch (256 a request, one request at a time) once per budget, and prints
exact accuracy (against the file's solutions), the rule check's verified rate, mean ACT steps per
puzzle over all attempts, mean attempts, puzzles verified by a retry and puzzles/s, with the
1-minute load average (os.getloadavg): numbers measured beside other work are not the machine's.
Ends with
    budget B: exact A.AAA at S.S ACT steps/puzzle (no budget: N.NNN at M.M)
Localhost only; bounded (budgets <= the server's --max-budget, 256 puzzles a request).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import HOST, start_server  # noqa: E402

HELDOUT = ROOT / "checkpoints" / "sudoku6-hard-hrm" / "raw" / "heldout.csv"
PER_REQUEST = 256


def post(port: int, body: dict) -> dict:
    req = urllib.request.Request(
        f"http://{HOST}:{port}/v1/solve/batch",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=900) as r:  # noqa: S310 - localhost only
        return json.loads(r.read())


def run(port: int, rows: list[dict[str, str]], budget: int) -> dict:
    start = time.perf_counter()
    answers: list[dict] = []
    for i in range(0, len(rows), PER_REQUEST):
        part = rows[i : i + PER_REQUEST]
        answers += post(port, {"puzzles": [{"puzzle": r["question"]} for r in part], "budget": budget})["answers"]
    seconds = time.perf_counter() - start
    n = len(rows)
    return {
        "budget": budget,
        "exact": sum(a["answer"] == r["answer"] for a, r in zip(answers, rows)) / n,
        "verified": sum(bool(a["verified"]) for a in answers) / n,
        "act_steps": sum(a.get("act_steps_total", a["steps"]) for a in answers) / n,
        "attempts": sum(a.get("attempts", 1) for a in answers) / n,
        "by_retry": sum((a.get("solved_at_attempt") or 0) > 1 for a in answers),
        "puzzles_s": n / seconds,
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", default="0,32,64", help="comma-separated; 0: no budget (default 0,32,64)")
    p.add_argument("--min-blanks", type=int, default=19, help="puzzles with at least this many blanks (19)")
    p.add_argument("--limit", type=int, help="only the first N of them")
    args = p.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    with HELDOUT.open() as f:
        rows = [r for r in csv.DictReader(f) if r["question"].count(".") >= args.min_blanks][: args.limit]
    print(f"{len(rows)} held-out puzzles with >= {args.min_blanks} blanks ({HELDOUT.relative_to(ROOT)})")
    log = Path(tempfile.mkdtemp(prefix="serve-scaling-")) / "server.log"
    proc, port = start_server(64, ["--dtype", "float32", "--max-queue", "2048", "--timeout", "900"], log)
    try:
        results = [run(port, rows, b) for b in budgets]
    finally:
        proc.terminate()
        proc.wait(60)
    print("| budget | exact | verified | mean ACT steps | mean attempts | verified by a retry | puzzles/s | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['budget'] or 'none'} | {r['exact']:.3f} | {r['verified']:.3f} | {r['act_steps']:.1f} | "
            f"{r['attempts']:.2f} | {r['by_retry']} | {r['puzzles_s']:.1f} | {r['load']:.1f} |"
        )
    best, plain = results[-1], next((r for r in results if not r["budget"]), None)
    tail = f" (no budget: {plain['exact']:.3f} at {plain['act_steps']:.1f})" if plain else ""
    print(f"budget {best['budget']}: exact {best['exact']:.3f} at {best['act_steps']:.1f} ACT steps/puzzle{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
