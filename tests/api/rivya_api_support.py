"""Test support for the API layer: a fake clock/sleep, and one harness that runs the same call
through the sync or the async client (tests parametrize over both)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx

from rivya_provider.api.client import AsyncRivyaClient, RivyaClient
from rivya_provider.api.config import ClientConfig
from tests.contract.documented_examples import TASK_QUEUED

API_KEY = "rvya_sk_test_5ecret_0123456789"
BASE_URL = "http://127.0.0.1:8765"
MEDIA_URL = "http://localhost:8765"  # same port, other host: the key must not go there

# The documented task object (RIVYA_API.md), with a concrete id.
GENERATION: dict[str, Any] = {**TASK_QUEUED, "id": "task_1"}


def generation(**changes: Any) -> dict[str, Any]:
    """The documented task object with some fields changed."""
    return {**GENERATION, **changes}


class FakeTime:
    """Epoch clock that only moves when something sleeps; records every sleep."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.start = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@dataclasses.dataclass
class Harness:
    """Runs one client method, sync or async, on a fresh client with fake time."""

    mode: str
    config: ClientConfig
    time: FakeTime

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        # verify=False only skips loading CA certificates (~50 ms per client): all HTTP is mocked.
        if self.mode == "sync":
            with httpx.Client(verify=False) as http:
                client = RivyaClient(
                    self.config, http, sleep=self.time.sleep, clock=self.time.clock
                )
                return getattr(client, method)(*args, **kwargs)

        async def run() -> Any:
            async with httpx.AsyncClient(verify=False) as http:
                client = AsyncRivyaClient(
                    self.config, http, sleep=self.time.asleep, clock=self.time.clock
                )
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(run())

    def with_config(self, **changes: Any) -> Harness:
        return dataclasses.replace(self, config=dataclasses.replace(self.config, **changes))
