"""RivyaBatchTrigger: waits for every generation of a batch in the triggerer, with GETs only.

One trigger for the whole batch: each generation is polled on the loop's shared pool (its
admission slots bound the concurrency), and one compact :class:`BatchEvent` is yielded when all
are terminal or the deadline passes. The event names generations by their position in the
trigger's list, so its size grows by a few bytes per item (about 5 KiB for 1,000 items).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent
from pydantic import BaseModel, ConfigDict, ValidationError

from rivya_provider.api.errors import GenerationFailedError, GenerationTimeoutError, RivyaError

if TYPE_CHECKING:
    from rivya_provider.api.client import AsyncRivyaClient

__all__ = ["BatchEvent", "RivyaBatchTrigger", "wait_for_all"]

#: Longest error message kept per failed generation in the event.
MAX_ERROR_MESSAGE = 200


class BatchEvent(BaseModel):
    """The one event :class:`RivyaBatchTrigger` yields: where each generation ended.

    :param status: ``complete`` (every generation terminal) or ``timeout`` (the deadline
        passed with some still running; they are listed in ``pending``).
    :param succeeded: positions (in the trigger's list) of the generations that succeeded.
    :param failed: position -> ``[error code, message]`` of those that failed, or whose status
        cannot be read for a non-transient reason (e.g. not found).
    :param pending: positions still running at the deadline.
    :param unreadable: those of ``failed`` whose status could not be read (not found, access
        denied): the generation did not fail, so it is not submitted again.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["complete", "timeout"]
    succeeded: list[int] = []
    failed: dict[int, tuple[str | None, str]] = {}
    pending: list[int] = []
    unreadable: list[int] = []

    @classmethod
    def parse(cls, payload: Any) -> BatchEvent:
        """Read an event back.

        :raises RivyaError: ``invalid_event`` (retryable: a new try replays the batch).
        """
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise RivyaError(
                f"Malformed event from RivyaBatchTrigger: {exc}",
                code="invalid_event",
                retryable=True,
            ) from None


async def wait_for_all(
    client: AsyncRivyaClient,
    generation_ids: Sequence[str],
    deadline: float,
    *,
    model: str | None = None,
    created_at: Sequence[float | None] | None = None,
) -> BatchEvent:
    """Wait for every generation (concurrently, GETs only) until terminal or ``deadline``.

    With ``model`` and each generation's ``created_at`` (epoch seconds, in the same order), each
    first check waits for that generation's expected completion once the model's duration is
    learned in this process.
    """
    created = list(created_at or [])

    async def one(position: int, generation_id: str) -> tuple[int, str, Any]:
        try:
            await client.wait_for_generation(
                generation_id,
                deadline=deadline,
                model=model,
                created_at=created[position] if position < len(created) else None,
            )
        except GenerationFailedError as exc:
            return position, "failed", (exc.code, exc.message[:MAX_ERROR_MESSAGE])
        except GenerationTimeoutError:
            return position, "pending", None
        except RivyaError as exc:  # transient errors never get here: the client absorbs them
            return position, "unreadable", (exc.code, exc.message[:MAX_ERROR_MESSAGE])
        return position, "succeeded", None

    outcomes = await asyncio.gather(*(one(p, g) for p, g in enumerate(generation_ids)))
    succeeded = [p for p, state, _ in outcomes if state == "succeeded"]
    failed = {p: detail for p, state, detail in outcomes if state in ("failed", "unreadable")}
    pending = [p for p, state, _ in outcomes if state == "pending"]
    return BatchEvent(
        status="timeout" if pending else "complete",
        succeeded=succeeded,
        failed=failed,
        pending=pending,
        unreadable=[p for p, state, _ in outcomes if state == "unreadable"],
    )


class RivyaBatchTrigger(BaseTrigger):
    """Poll every generation of a batch until all are terminal or the deadline passes.

    Never submits anything; transient errors are ridden out until the deadline; yields exactly
    one :class:`BatchEvent`.

    :param generation_ids: the batch's generations, in item order.
    :param rivya_conn_id: Airflow connection of type ``rivya``.
    :param deadline: absolute deadline, epoch seconds, computed once at submit.
    :param poll: poll schedule as plain JSON (``PollSchedule.to_dict()``); ``None`` uses the
        connection's schedule.
    :param model: the batch's model, and ``created_at`` each generation's creation (epoch
        seconds, same order; ``None`` where unknown): first checks then wait for the expected
        completion once this triggerer has learned the model's duration.
    :param created_at: see ``model``.
    """

    def __init__(
        self,
        generation_ids: Sequence[str],
        deadline: float,
        rivya_conn_id: str = "rivya_default",
        poll: dict[str, float] | None = None,
        model: str | None = None,
        created_at: Sequence[float | None] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.generation_ids = list(generation_ids)
        self.deadline = float(deadline)
        self.rivya_conn_id = rivya_conn_id
        self.poll = dict(poll) if poll else None
        self.model = model
        self.created_at = list(created_at) if created_at else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Plain JSON kwargs only: ids, conn id, deadline, poll settings. Never a secret."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "generation_ids": self.generation_ids,
                "deadline": self.deadline,
                "rivya_conn_id": self.rivya_conn_id,
                "poll": self.poll,
                "model": self.model,
                "created_at": self.created_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield the single event once every generation is terminal (or at the deadline)."""
        from rivya_provider.hooks.rivya import RivyaHook

        self.log.info("Waiting for %d Rivya generations", len(self.generation_ids))
        async with RivyaHook(rivya_conn_id=self.rivya_conn_id).async_client(
            poll=self.poll
        ) as client:
            event = await wait_for_all(
                client,
                self.generation_ids,
                self.deadline,
                model=self.model,
                created_at=self.created_at,
            )
        self.log.info(
            "Rivya batch: %d succeeded, %d failed, %d still running",
            len(event.succeeded),
            len(event.failed),
            len(event.pending),
        )
        yield TriggerEvent(event.model_dump(mode="json"))
