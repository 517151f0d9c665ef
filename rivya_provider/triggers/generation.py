"""RivyaGenerationTrigger: waits for a Rivya generation in the triggerer, with GETs only."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from rivya_provider.api.client import AsyncRivyaClient
    from rivya_provider.api.models import Generation

#: Pause between two attempts of the whole wait after the client's own retries gave up on a
#: transient error (network down for a while, API disabled): grows to this cap, with jitter.
_OUTAGE_BACKOFF_CAP = 60.0


class RivyaGenerationTrigger(BaseTrigger):
    """Poll one generation until it is terminal or its absolute deadline passes.

    It never submits anything (a restarted triggerer must not pay twice), rides out transient
    errors (network, 429, 5xx) until the deadline, and yields exactly one event::

        {"status": "succeeded" | "failed" | "timeout" | "error",
         "generation": {...} | None, "generation_id": ..., "message": ...}

    :param generation_id: the Rivya generation to watch.
    :param rivya_conn_id: Airflow connection of type ``rivya``.
    :param deadline: absolute deadline, epoch seconds, computed once at submit.
    :param poll: poll schedule as a plain dict (see ``rivya_provider.api.polling.PollSchedule``);
        ``None`` uses the connection's schedule.
    """

    def __init__(
        self,
        generation_id: str,
        deadline: float,
        rivya_conn_id: str = "rivya_default",
        poll: dict[str, float] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.generation_id = generation_id
        self.deadline = float(deadline)
        self.rivya_conn_id = rivya_conn_id
        self.poll = dict(poll) if poll else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Plain JSON kwargs only: ids, conn id, deadline, poll settings. Never a secret."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "generation_id": self.generation_id,
                "deadline": self.deadline,
                "rivya_conn_id": self.rivya_conn_id,
                "poll": self.poll,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield the single terminal event."""
        yield TriggerEvent(await self._wait())

    async def _wait(self) -> dict[str, Any]:
        from rivya_provider.hooks.rivya import RivyaHook

        hook = RivyaHook(rivya_conn_id=self.rivya_conn_id)
        async with hook.async_client(poll=self.poll) as client:
            return await self._wait_with(client)

    async def _wait_with(self, client: AsyncRivyaClient) -> dict[str, Any]:
        from rivya_provider.api.errors import (
            GenerationFailedError,
            GenerationTimeoutError,
            RivyaError,
        )

        last: list[Generation] = []

        def on_status(generation: Generation) -> None:
            last[:] = [generation]
            self.log.info("Rivya generation %s is %s", generation.id, generation.status)

        outages = 0
        while True:
            try:
                generation = await client.wait_for_generation(
                    self.generation_id, deadline=self.deadline, on_status=on_status
                )
            except GenerationFailedError as exc:
                return self._event("failed", exc.generation, str(exc))
            except GenerationTimeoutError as exc:
                return self._event("timeout", last[0] if last else None, str(exc))
            except RivyaError as exc:
                if not exc.retryable:
                    return self._event(
                        "error",
                        last[0] if last else None,
                        str(exc),
                        error_code=exc.code,
                        retryable=False,
                    )
                outages += 1
                pause = random.uniform(0, min(_OUTAGE_BACKOFF_CAP, 2.0**outages))
                remaining = self.deadline - time.time()
                self.log.warning(
                    "Transient error polling generation %s (%s); still waiting, %.0f s left",
                    self.generation_id,
                    exc.code,
                    max(0.0, remaining),
                )
                if remaining <= 0:
                    return self._event(
                        "timeout", last[0] if last else None, f"deadline passed during: {exc}"
                    )
                await asyncio.sleep(min(pause, remaining))
                continue
            return self._event("succeeded", generation, "generation succeeded")

    def _event(
        self,
        status: str,
        generation: Generation | None,
        message: str,
        *,
        error_code: str | None = None,
        retryable: bool = False,
    ) -> dict[str, Any]:
        return {
            "status": status,
            "generation_id": self.generation_id,
            "generation": generation.model_dump(mode="json") if generation else None,
            "message": message,
            "error_code": error_code,
            "retryable": retryable,
        }
