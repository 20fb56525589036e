"""`--mode serve` under load: N concurrent clients for T seconds, dynamic batching vs one at a time.

    python benchmarks/serve_load.py                       # 64 clients x 30 s per mode
    python benchmarks/serve_load.py --clients 8 --seconds 5

For each mode it starts a server on a free localhost port (`deploy.py --mode serve --port 0`,
the bundled model), runs the clients against it and stops it:
  dynamic        --max-batch 64 (default): requests share the engine's slots;
  one-at-a-time  --max-batch 1: every puzzle runs alone.
Each client is one keep-alive HTTP/1.1 connection that posts a bundled test puzzle to
/v1/solve, waits for the answer and posts the next; the clients are plain asyncio sockets so
that they take little of the CPU the server needs. Any answer but 200 with a verified or
unverified answer, or a broken connection, is an error. Each mode's row
gives the 1-minute load average (os.getloadavg) as it ended: numbers measured beside other work
are not the machine's. Ends with
    dynamic batching: X.XXx puzzles/s over one-at-a-time, N errors
Localhost only; clients and time are bounded (--clients <= 1024, --seconds <= 600).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hrm_eval.data.dataset import PuzzleDataset  # noqa: E402
from hrm_eval.data.tasks import get_task  # noqa: E402

HOST = "127.0.0.1"


def bodies(n: int = 256) -> list[bytes]:
    """Request bodies of the first `n` bundled test puzzles, in the task's natural form."""
    data = PuzzleDataset(ROOT / "checkpoints" / "sudoku6-hrm" / "data", split="test")
    task = get_task("sudoku6")
    inputs = data.sets["all"]["inputs"]
    return [json.dumps({"puzzle": task.decode_answer(inputs[i])}).encode() for i in range(min(n, len(inputs)))]


def start_server(max_batch: int, extra: list[str], log: Path) -> tuple[subprocess.Popen, int]:
    args = [sys.executable, str(ROOT / "deploy.py"), "--mode", "serve", "--host", HOST, "--port", "0"]
    args += ["--max-batch", str(max_batch), "--timeout", "120", *extra]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = re.search(r" on http://[^:]+:(\d+)", log.read_text())
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


async def request(reader, writer, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
    writer.write(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def client(port: int, payloads: list[bytes], seed: int, stop_at: float, out: dict[str, list]) -> None:
    rng = np.random.default_rng(seed)
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as e:
        out["errors"].append(f"connect: {e}")
        return
    while time.monotonic() < stop_at:
        body = payloads[int(rng.integers(len(payloads)))]
        t0 = time.monotonic()
        try:
            status, reply = await request(reader, writer, "POST", "/v1/solve", body)
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            out["errors"].append(f"connection: {e!r}")
            return
        if status != 200 or "answer" not in json.loads(reply):
            out["errors"].append(f"{status}: {reply[:200]!r}")
            continue
        out["latency"].append(time.monotonic() - t0)
    writer.close()


async def load(port: int, clients: int, seconds: float, warmup: float, payloads: list[bytes]) -> dict:
    """Warm up, then `clients` clients for `seconds`; counts only answers within the window."""
    warm: dict[str, list] = {"latency": [], "errors": []}
    await asyncio.gather(*(client(port, payloads, 1000 + i, time.monotonic() + warmup, warm) for i in range(clients)))
    out: dict[str, list] = {"latency": [], "errors": []}
    start = time.monotonic()
    await asyncio.gather(*(client(port, payloads, i, start + seconds, out) for i in range(clients)))
    elapsed = time.monotonic() - start
    reader, writer = await asyncio.open_connection(HOST, port)
    _, metrics = await request(reader, writer, "GET", "/v1/stats")
    writer.close()
    lat = np.asarray(out["latency"]) * 1000.0
    return {
        "answers": len(lat),
        "errors": out["errors"] + warm["errors"],
        "puzzles_per_s": len(lat) / elapsed,
        "p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p95": float(np.percentile(lat, 95)) if lat.size else float("nan"),
        "p99": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "mean_batch": json.loads(metrics)["engine"]["mean_batch"],
    }


def run_mode(name: str, max_batch: int, args: argparse.Namespace, payloads: list[bytes]) -> dict:
    extra = ["--threads", str(args.threads)] if args.threads else []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        proc, port = start_server(max_batch, extra, log)
        try:
            result = asyncio.run(load(port, args.clients, args.seconds, args.warmup, payloads))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    result["mode"] = name
    result["load"] = os.getloadavg()[0]
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the measured window")
    p.add_argument("--max-batch", type=int, default=64, help="slots of the dynamic-batching server")
    p.add_argument("--threads", type=int, help="engine threads (default: the server's, one per core)")
    args = p.parse_args(argv)
    if not 1 <= args.clients <= 1024 or not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60:
        p.error("need 1 <= --clients <= 1024, 0 < --seconds <= 600, 0 <= --warmup <= 60")
    payloads = bodies()
    print(
        f"{args.clients} clients x {args.seconds:g} s per mode on {os.cpu_count()} CPUs, bundled sudoku6-hrm, "
        f"load average {os.getloadavg()[0]:.2f} before"
    )
    results = [
        run_mode("dynamic", args.max_batch, args, payloads),
        run_mode("one-at-a-time", 1, args, payloads),
    ]
    header = f"{'mode':<15}{'answers':>9}{'errors':>8}{'puzzles/s':>11}"
    print(header + f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'batch':>7}{'load':>7}")
    for r in results:
        print(
            f"{r['mode']:<15}{r['answers']:>9}{len(r['errors']):>8}{r['puzzles_per_s']:>11.1f}"
            f"{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['mean_batch']:>7.1f}{r['load']:>7.2f}"
        )
    errors = sum(len(r["errors"]) for r in results)
    for r in results:
        for e in r["errors"][:3]:
            print(f"  {r['mode']} error: {e}")
    ratio = results[0]["puzzles_per_s"] / max(results[1]["puzzles_per_s"], 1e-9)
    print(f"dynamic batching: {ratio:.2f}x puzzles/s over one-at-a-time, {errors} errors")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
