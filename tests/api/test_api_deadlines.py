"""[hardening] Every request has a total deadline, and slow answers never starve other waits.

Against the emulator over real HTTP on loopback: its ``trickle`` fault sends an answer's body one
byte a second, so no single read ever times out (httpx's own timeouts are per read).
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from rivya_provider.api.client import AsyncRivyaClient, RivyaClient
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.errors import GenerationTimeoutError, TransportError
from rivya_provider.api.models import GenerationRequest
from rivya_provider.api.polling import PollSchedule
from rivya_provider.api.pool import MAX_CONNECTIONS, shared_async_http_client

if TYPE_CHECKING:
    from rivya_provider.testing.emulator_process import RivyaEmulator

QUICK = PollSchedule(first_delay=0.1, interval=0.2, max_interval=0.5)
#: The acceptance bound: a wait ends at most this long after its deadline.
DEADLINE_SLACK = 2.0


def _config(emulator: RivyaEmulator, timeout: float = 30.0) -> ClientConfig:
    return ClientConfig(
        api_key=emulator.api_key, base_url=emulator.base_url, timeout=timeout, poll=QUICK
    )


def _create(emulator: RivyaEmulator, count: int) -> list[str]:
    with RivyaClient(_config(emulator)) as client:
        return [
            client.create_generation(
                GenerationRequest(model="qwen-image", prompt=f"product {n}"), f"deadline-{n}"
            ).generation.id
            for n in range(count)
        ]


def _call(driver: str, config: ClientConfig, method: str, *args: Any) -> Any:
    """``method(*args)`` of a sync or an async client."""
    if driver == "sync":
        with RivyaClient(config) as client:
            return getattr(client, method)(*args)

    async def run() -> Any:
        async with AsyncRivyaClient(config) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(run())


def _trickle(emulator: RivyaEmulator, generation_id: str) -> None:
    emulator.inject_fault(
        f"/api/v1/generations/{generation_id}",
        action="trickle",
        delay=1.0,
        count=1000,
        match="exact",
        method="GET",
    )


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_wait_whose_status_answers_trickle_ends_at_its_deadline(
    rivya_emulator: RivyaEmulator, driver: str
) -> None:
    """Before: a trickling status answer kept the wait going 13-22 s past its deadline."""
    (generation_id,) = _create(rivya_emulator, 1)
    _trickle(rivya_emulator, generation_id)
    config = _config(rivya_emulator)  # per-request timeout 30 s: the deadline must cut it
    started = time.monotonic()
    deadline = time.time() + 3.0
    with pytest.raises(GenerationTimeoutError):
        _call(driver, config, "wait_for_generation", generation_id, deadline)
    elapsed = time.monotonic() - started
    assert elapsed <= 3.0 + DEADLINE_SLACK, f"wait ended {elapsed - 3.0:.1f} s past its deadline"
    trickled = rivya_emulator.requests(f"/api/v1/generations/{generation_id}")
    assert trickled
    assert all(r["fault"] == "trickle" for r in trickled)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_trickling_download_ends_at_the_request_timeout(
    rivya_emulator: RivyaEmulator, driver: str
) -> None:
    """Before: a download with a 2 s timeout was still running at 25 s."""
    rivya_emulator.configure(latency=0.0)
    (generation_id,) = _create(rivya_emulator, 1)
    with RivyaClient(_config(rivya_emulator)) as client:
        done = client.wait_for_generation(generation_id, time.time() + 30)
    assert done.result is not None
    assert done.result.primary_url
    url = done.result.primary_url
    rivya_emulator.inject_fault(httpx.URL(url).path, action="trickle", delay=0.5, count=10)
    config = _config(rivya_emulator, timeout=2.0)
    sink = io.BytesIO()
    started = time.monotonic()
    with pytest.raises(TransportError, match="TimeoutException"):
        _call(driver, config, "download", url, sink, 10_000_000)
    elapsed = time.monotonic() - started
    assert elapsed <= 2.0 + DEADLINE_SLACK, f"download ran {elapsed:.1f} s (timeout 2 s)"
    assert 0 < len(sink.getvalue()) < 20  # it did trickle, and was cut off


def test_slow_answers_do_not_starve_healthy_waits_in_one_loop(
    rivya_emulator: RivyaEmulator,
) -> None:
    """32 trickling status answers fill every admission slot of a triggerer's shared pool.

    Before: 0 of 10 healthy generations in the same loop finished within 30 s (they waited for
    a slot the slow answers held until their deadline). Now a slow request leaves its slot.
    """
    rivya_emulator.configure(latency=0.5)
    ids = _create(rivya_emulator, MAX_CONNECTIONS + 10)
    slow, healthy = ids[:MAX_CONNECTIONS], ids[MAX_CONNECTIONS:]
    for generation_id in slow:
        _trickle(rivya_emulator, generation_id)
    config = _config(rivya_emulator)
    slow_deadline = 10.0
    finished: dict[str, float] = {}

    async def wait(generation_id: str, deadline: float) -> None:
        async with shared_async_http_client() as http:
            client = AsyncRivyaClient(config, http)
            try:
                await client.wait_for_generation(generation_id, deadline)
            except GenerationTimeoutError:
                return
            finished[generation_id] = time.monotonic() - started

    async def main() -> None:
        waits = [asyncio.create_task(wait(g, time.time() + slow_deadline)) for g in slow]
        await asyncio.sleep(0.3)  # the slow polls hold every slot first
        waits += [asyncio.create_task(wait(g, time.time() + 30)) for g in healthy]
        await asyncio.gather(*waits)

    started = time.monotonic()
    asyncio.run(main())
    assert sorted(finished) == sorted(healthy)
    slowest = max(finished.values())
    # Alone they take about 1 s; the slow lane opens after SLOW_AFTER (1 s). Starved, they
    # would wait for the slow polls' deadline (10 s).
    assert slowest < 5.0, f"healthy waits took up to {slowest:.1f} s"
