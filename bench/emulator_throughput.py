"""Emulator throughput: status requests/s with 1,000 generations in flight.

Starts ``python -m rivya_provider.emulator --port 0`` in its own process with a latency long
enough that every generation stays in flight, creates the generations, then polls
``GET /api/v1/generations/{id}`` round-robin with ``httpx.AsyncClient`` workers (bounded
concurrency) for a fixed duration. Prints figures, asserts nothing. Stops the server by PID.

On a small machine the Python client costs several times more CPU per request than the
emulator, so ``--processes 2`` splits the workers over two client processes; with the default
(one process) the figure is a lower bound set by the client.

    .venv/bin/python bench/emulator_throughput.py [--generations 1000] [--seconds 10]
        [--concurrency 4] [--processes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

KEY = "rvya_sk_emulator"
READY = re.compile(r"listening on (\S+) \(API key: ([^)]+)\)")


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    """Start the emulator CLI on a free port; return the process and its base URL."""
    command = [sys.executable, "-m", "rivya_provider.emulator", "--port", "0"]
    command += ["--latency", "3600", "--credits", "10000000"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert process.stdout is not None
    found = READY.search(process.stdout.readline())
    if not found:
        process.kill()
        raise SystemExit("the emulator did not start")
    return process, found[1]


def _client(base_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {KEY}"}
    return httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30.0)


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    runner: Callable[[Coroutine[Any, Any, Any]], Any]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(coroutine)


async def create_generations(base_url: str, count: int) -> list[str]:
    """Create ``count`` qwen-image generations, 8 at a time."""
    semaphore = asyncio.Semaphore(8)
    async with _client(base_url, connections=8) as client:

        async def create(index: int) -> str:
            async with semaphore:
                body = {"model": "qwen-image", "prompt": f"bench image {index}"}
                response = await client.post("/api/v1/generations", json=body)
                response.raise_for_status()
                return str(response.json()["id"])

        return list(await asyncio.gather(*(create(i) for i in range(count))))


async def poll(
    base_url: str, ids: list[str], start_at: float, seconds: float, concurrency: int
) -> tuple[list[float], int]:
    """Poll round-robin from ``start_at`` (epoch) for ``seconds``; latencies and error count.

    Each worker has its own one-connection client: httpcore checks every idle pooled
    connection on each request (a syscall each), so one big shared pool would be the bottleneck.
    """
    latencies: list[float] = []
    errors = 0
    cycle = itertools.cycle(ids)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        async with _client(base_url, connections=1) as client:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(f"/api/v1/generations/{next(cycle)}")
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or response.json()["status"] not in (
                    "queued",
                    "processing",
                ):
                    errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def poll_process(
    base_url: str, ids: list[str], start_at: float, seconds: float, concurrency: int
) -> tuple[list[float], int]:
    """:func:`poll` in a client process of its own."""
    result: tuple[list[float], int] = _run(poll(base_url, ids, start_at, seconds, concurrency))
    return result


def measure(
    base_url: str, ids: list[str], seconds: float, concurrency: int, processes: int
) -> tuple[list[float], int]:
    """Spread ``concurrency`` workers over ``processes`` client processes started together."""
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    start_at = time.time() + 3.0  # lets every client process import httpx first
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [
            pool.submit(poll_process, base_url, ids, start_at, seconds, share)
            for share in shares
            if share
        ]
        results = [future.result() for future in futures]
    latencies = [latency for result in results for latency in result[0]]
    return latencies, sum(result[1] for result in results)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux ``/proc``), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(
    base_url: str, pid: int, ids: list[str], created_in: float, args: argparse.Namespace
) -> None:
    """Measure and print the figures."""
    cpu_before = cpu_seconds(pid)
    latencies, errors = measure(base_url, ids, args.seconds, args.concurrency, args.processes)
    cpu_after = cpu_seconds(pid)
    with httpx.Client(base_url=base_url) as control:
        statuses = [g["status"] for g in control.get("/_emulator/generations").json()]
        balance = control.get("/_emulator/ledger").json()["balance"]
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    in_flight = sum(status in ("queued", "processing") for status in statuses)
    print(f"generations created:     {len(ids)} in {created_in:.2f} s")
    print(f"in flight at the end:    {in_flight}")
    print(
        f"status requests:         {len(latencies)} in {args.seconds:.1f} s "
        f"(concurrency {args.concurrency}, {args.processes} client process(es))"
    )
    print(f"throughput:              {len(latencies) / args.seconds:.0f} requests/s")
    print(f"latency p50:             {statistics.median(ordered) * 1000:.2f} ms")
    print(f"latency p99:             {p99 * 1000:.2f} ms")
    if cpu_before is not None and cpu_after is not None and latencies:
        per_request = (cpu_after - cpu_before) / len(latencies)
        print(
            f"emulator CPU per request: {per_request * 1000:.3f} ms "
            f"(~{1 / max(per_request, 1e-9):.0f} requests/s per core, client excluded)"
        )
    print(f"errors:                  {errors}")
    print(f"balance:                 {balance}")


def main() -> None:
    """Parse arguments, run the benchmark, stop the emulator by PID."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    process, base_url = start_emulator()
    try:
        print(f"emulator pid {process.pid} at {base_url}")
        started = time.perf_counter()
        ids: list[str] = _run(create_generations(base_url, args.generations))
        report(base_url, process.pid, ids, time.perf_counter() - started, args)
    finally:
        os.kill(process.pid, signal.SIGINT)
        process.wait(10)
        print(f"emulator exit status:    {process.returncode}")


if __name__ == "__main__":
    main()
