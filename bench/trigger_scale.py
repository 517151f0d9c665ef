"""N RivyaGenerationTriggers in one event loop against the emulator in a separate process.

Run: ``.venv/bin/python bench/trigger_scale.py [--generations 1000] [--latency 30] [--interval 5]``

Prints, for the trigger path and for a bare httpx baseline measured in the same run (one shared
``httpx.AsyncClient``, a plain GET loop on the same schedule): CPU seconds per 1,000 status
polls and their ratio (target <= 1.5); TCP connections opened (target <= 100 for 1,000
concurrent generations); RSS growth per 1,000 generations (target <= 50 MB); and the import cost
of ``rivya_provider.operators.generate`` on top of ``airflow.sdk`` (target <= 50 ms).
Figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

# The bench process is the "triggerer": give it a throwaway Airflow home before Airflow loads.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="rivya-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


class ConnectionCounter:
    """Counts TCP connections this process opens (every asyncio ``create_connection``)."""

    def __init__(self) -> None:
        self.opened = 0
        loop_cls = asyncio.BaseEventLoop
        original = loop_cls.create_connection

        async def counting(loop: Any, *args: Any, **kwargs: Any) -> Any:
            self.opened += 1
            return await original(loop, *args, **kwargs)

        loop_cls.create_connection = counting  # type: ignore[method-assign]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _create_generations(base_url: str, api_key: str, count: int) -> list[str]:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:
        semaphore = asyncio.Semaphore(20)

        async def create(index: int) -> str:
            async with semaphore:
                response = await client.post(
                    "/api/v1/generations",
                    json={"model": "qwen-image", "prompt": f"bench {index}"},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                response.raise_for_status()
                return str(response.json()["id"])

        return await asyncio.gather(*(create(i) for i in range(count)))


async def _measure(
    run_all: Callable[[], Awaitable[int]], counter: ConnectionCounter
) -> dict[str, float]:
    opened_before = counter.opened
    rss_before = _rss_mb()
    peak = [rss_before]
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            await asyncio.sleep(0.2)

    sampler = asyncio.ensure_future(sample())
    cpu, wall = time.process_time(), time.perf_counter()
    polls = await run_all()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done.set()
    await sampler
    return {
        "polls": polls,
        "cpu": cpu,
        "wall": wall,
        "connections": counter.opened - opened_before,
        "rss_growth": peak[0] - rss_before,
    }


async def _trigger_path(ids: list[str], poll: dict[str, float], emulator: Any) -> int:
    from rivya_provider.triggers.generation import RivyaGenerationTrigger

    deadline = time.time() + 600
    before = len(emulator.requests("/api/v1/generations/"))

    async def one(generation_id: str) -> str:
        trigger = RivyaGenerationTrigger(generation_id, deadline=deadline, poll=poll)
        events = [event.payload async for event in trigger.run()]
        return str(events[0]["status"])

    statuses = await asyncio.gather(*(one(i) for i in ids))
    assert set(statuses) == {"succeeded"}, set(statuses)
    return len(emulator.requests("/api/v1/generations/")) - before


async def _bare_httpx(ids: list[str], poll: dict[str, float], base_url: str, key: str) -> int:
    import httpx

    from rivya_provider.api.pool import MAX_CONNECTIONS, POOL_LIMITS

    # Same concurrency bound as the trigger path's shared pool, so only our overhead differs.
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    polls = 0
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, limits=POOL_LIMITS
    ) as client:

        async def one(generation_id: str) -> None:
            nonlocal polls
            delay, interval = poll["first_delay"], poll["interval"]
            while True:
                await asyncio.sleep(delay)
                async with slots:
                    response = await client.get(f"/api/v1/generations/{generation_id}")
                polls += 1
                if response.json()["status"] in ("succeeded", "failed"):
                    return
                delay, interval = interval, min(interval * poll["factor"], poll["max_interval"])

        await asyncio.gather(*(one(i) for i in ids))
    return polls


def _import_cost(repeats: int = 5) -> tuple[float, float]:
    code = (
        "import time; t0 = time.perf_counter(); import airflow.sdk; t1 = time.perf_counter();"
        " import rivya_provider.operators.generate; t2 = time.perf_counter();"
        " print(t1 - t0, t2 - t1)"
    )
    sdk, ours = [], []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        sdk.append(float(out[-2]))
        ours.append(float(out[-1]))
    return statistics.median(sdk), statistics.median(ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=30.0, help="emulator seconds per job")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    args = parser.parse_args()

    from rivya_provider.testing.emulator_process import run_emulator

    counter = ConnectionCounter()
    poll = {
        "first_delay": args.interval,
        "interval": args.interval,
        "factor": 1.0,
        "max_interval": args.interval,
    }
    n = args.generations
    with run_emulator(latency=args.latency, credits=10 * n * 4 + 100) as emulator:
        os.environ["AIRFLOW_CONN_RIVYA_DEFAULT"] = emulator.connection_json()
        loop = asyncio.new_event_loop()
        try:
            # Warm-up: imports, connection lookup, first pool, so neither side pays them below.
            warm = loop.run_until_complete(
                _create_generations(emulator.base_url, emulator.api_key, 2)
            )
            emulator.configure(latency=0.0)
            loop.run_until_complete(_trigger_path(warm, poll | {"first_delay": 0.0}, emulator))
            loop.run_until_complete(
                _bare_httpx(warm, poll | {"first_delay": 0.0}, emulator.base_url, emulator.api_key)
            )
            emulator.configure(latency=args.latency)

            ids = loop.run_until_complete(
                _create_generations(emulator.base_url, emulator.api_key, n)
            )
            ours = loop.run_until_complete(
                _measure(lambda: _trigger_path(ids, poll, emulator), counter)
            )
            ids = loop.run_until_complete(
                _create_generations(emulator.base_url, emulator.api_key, n)
            )
            bare = loop.run_until_complete(
                _measure(
                    lambda: _bare_httpx(ids, poll, emulator.base_url, emulator.api_key), counter
                )
            )
        finally:
            loop.close()
    sdk_import, our_import = _import_cost()

    def per_1000(m: dict[str, float]) -> float:
        return m["cpu"] / m["polls"] * 1000

    scale = 1000 / n
    print(f"generations in flight: {n}; poll every {args.interval:g} s; latency {args.latency:g} s")
    for name, m in (("trigger path", ours), ("bare httpx  ", bare)):
        print(
            f"{name}: {int(m['polls'])} polls in {m['wall']:.1f} s, "
            f"CPU {per_1000(m):.3f} s per 1,000 polls, "
            f"{int(m['connections'])} TCP connections opened, "
            f"RSS +{m['rss_growth'] * scale:.1f} MB per 1,000 generations"
        )
    print(f"CPU ratio trigger/bare: {per_1000(ours) / per_1000(bare):.2f} (target <= 1.5)")
    print(f"TCP connections opened by {n} triggers: {int(ours['connections'])} (target <= 100)")
    print(
        f"import rivya_provider.operators.generate on top of airflow.sdk: "
        f"{our_import * 1000:.1f} ms (airflow.sdk itself: {sdk_import * 1000:.0f} ms; "
        "target <= 50 ms)"
    )
    print(json.dumps({"trigger": ours, "bare": bare, "import_ms": our_import * 1000}))


if __name__ == "__main__":
    main()
