"""RivyaGenerationTrigger: waits for a Rivya generation in the triggerer, with GETs only.

The event it yields is :class:`GenerationEvent`, defined here, next to its producer; whoever
resumes after the trigger imports it to read the event back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent
from pydantic import BaseModel, ConfigDict, ValidationError

from rivya_provider.api.errors import GenerationFailedError, GenerationTimeoutError, RivyaError
from rivya_provider.api.models import Generation

__all__ = ["GenerationEvent", "RivyaGenerationTrigger"]


class GenerationEvent(BaseModel):
    """The one event :class:`RivyaGenerationTrigger` yields, as plain JSON in the metadata DB.

    :param status: ``succeeded``, ``failed``, ``timeout`` (the deadline passed) or ``error``
        (a non-retryable API error; transient ones never end the wait).
    :param generation_id: the generation waited for.
    :param generation: its last known state (``None`` when none was seen).
    :param message: what happened, for the task log (never the API key).
    :param error_code: Rivya's ``error.code`` of an ``error`` event.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["succeeded", "failed", "timeout", "error"]
    generation_id: str
    generation: Generation | None = None
    message: str = ""
    error_code: str | None = None

    @classmethod
    def parse(cls, payload: Any) -> GenerationEvent:
        """Read an event back; a missing or unknown status is never taken as success.

        :raises RivyaError: ``invalid_event`` (retryable: a new try replays the generation).
        """
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise RivyaError(
                f"Malformed event from RivyaGenerationTrigger: {exc}",
                code="invalid_event",
                retryable=True,
            ) from None

    def succeeded_generation(self) -> Generation:
        """The succeeded generation, or the API error this event stands for.

        :raises GenerationFailedError: the generation failed (credits released).
        :raises GenerationTimeoutError: the deadline passed first.
        :raises RivyaError: an ``error`` event (non-retryable), or an inconsistent success.
        """
        if self.status == "failed" and self.generation is not None:
            raise GenerationFailedError(self.generation)
        if self.status == "timeout":
            last = self.generation.status if self.generation is not None else None
            raise GenerationTimeoutError(self.generation_id, last)
        if self.status == "error":
            raise RivyaError(
                f"while waiting for generation {self.generation_id}: {self.message}",
                code=self.error_code,
            )
        if self.generation is None or not self.generation.succeeded:
            state = self.generation.status if self.generation is not None else "missing"
            raise RivyaError(
                f"Trigger event {self.status!r} for generation {self.generation_id} carries "
                f"a generation that is {state}",
                code="invalid_event",
                retryable=True,
            )
        return self.generation


class RivyaGenerationTrigger(BaseTrigger):
    """Poll one generation until it is terminal or its absolute deadline passes.

    It never submits anything (a restarted triggerer must not pay twice), rides out transient
    errors (network, 429, 5xx, in the client) until the deadline, and yields exactly one
    :class:`GenerationEvent`.

    :param generation_id: the Rivya generation to watch.
    :param rivya_conn_id: Airflow connection of type ``rivya``.
    :param deadline: absolute deadline, epoch seconds, computed once at submit.
    :param poll: poll schedule as plain JSON (``PollSchedule.to_dict()``); ``None`` uses the
        connection's schedule.
    :param model: the generation's model and ``created_at`` (epoch seconds), when known: the
        first check then waits for the expected completion (the model's running median in
        this triggerer) instead of the schedule's first delay.
    :param created_at: see ``model``.
    """

    def __init__(
        self,
        generation_id: str,
        deadline: float,
        rivya_conn_id: str = "rivya_default",
        poll: dict[str, float] | None = None,
        model: str | None = None,
        created_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.generation_id = generation_id
        self.deadline = float(deadline)
        self.rivya_conn_id = rivya_conn_id
        self.poll = dict(poll) if poll else None
        self.model = model
        self.created_at = None if created_at is None else float(created_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Plain JSON kwargs only: ids, conn id, deadline, poll settings. Never a secret."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "generation_id": self.generation_id,
                "deadline": self.deadline,
                "rivya_conn_id": self.rivya_conn_id,
                "poll": self.poll,
                "model": self.model,
                "created_at": self.created_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield the single terminal event."""
        event = await self._wait()
        yield TriggerEvent(event.model_dump(mode="json"))

    async def _wait(self) -> GenerationEvent:
        from rivya_provider.api.pool import pool_users
        from rivya_provider.hooks.rivya import RivyaHook

        last: list[Generation] = []

        def on_status(generation: Generation) -> None:
            last[:] = [generation]
            self.log.info("Rivya generation %s is %s", generation.id, generation.status)

        def event(status: str, message: str, **fields: Any) -> GenerationEvent:
            fields.setdefault("generation", last[0] if last else None)
            return GenerationEvent.model_validate(
                {"status": status, "generation_id": self.generation_id, "message": message} | fields
            )

        try:
            async with RivyaHook(rivya_conn_id=self.rivya_conn_id).async_client(
                poll=self.poll
            ) as client:
                self.log.info(
                    "Waiting for Rivya generation %s (%d waits share this connection pool)",
                    self.generation_id,
                    pool_users(),
                )
                generation = await client.wait_for_generation(
                    self.generation_id,
                    deadline=self.deadline,
                    on_status=on_status,
                    model=self.model,
                    created_at=self.created_at,
                )
        except GenerationFailedError as exc:
            return event("failed", str(exc), generation=exc.generation)
        except GenerationTimeoutError as exc:
            return event("timeout", str(exc))
        except RivyaError as exc:
            # The client absorbs every transient error until the deadline: what reaches here
            # cannot get better by waiting (auth, scope, not found, a bad connection setting).
            return event("error", exc.message, error_code=exc.code)
        return event("succeeded", "generation succeeded", generation=generation)
