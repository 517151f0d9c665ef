"""Paying once: idempotency keys, replay detection and the resubmission series, in one place.

A caller names the work with a stable *identity* (for Airflow: dag, task, run and map index)
and the request body's digest; :func:`derive_idempotency_key` turns both into the
``Idempotency-Key``, so asking again for the same work replays the same generation instead of
paying again. When the replayed generation had failed (its credits were released), the next key
of the series (``<key>-r1``, ``-r2``, ...) creates a fresh one. :func:`submit_once` is that
rule as one client operation; ``RivyaClient.submit_generation`` runs it.

A :class:`Submission` can be saved (``record()``, plain JSON) and handed back as ``previous``:
the next call then reattaches to that generation with a single GET, or, when it had failed,
continues the series after it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Generator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rivya_provider.api.errors import IdempotencyConflictError, RivyaValidationError
from rivya_provider.api.models import MAX_CLIENT_REQUEST_ID, CreateResult, Generation

if TYPE_CHECKING:
    from rivya_provider.api.models import GenerationRequest

__all__ = [
    "MAX_RESUBMISSIONS",
    "Submission",
    "check_idempotency_key",
    "client_request_id_for",
    "derive_idempotency_key",
    "is_earlier_attempt",
    "parse_timestamp",
    "resubmission_key",
    "submit_once",
]

log = logging.getLogger("rivya_provider.api")

#: Fresh submissions one piece of work may make after replayed generations had failed.
MAX_RESUBMISSIONS = 20
#: A generation created this long before the current call started belongs to an earlier call
#: (tolerates clock skew between this machine and the API).
EARLIER_ATTEMPT_MARGIN = 30.0


#: Longest ``Idempotency-Key`` sent; a base key leaves room for the series suffix (``-r20``).
MAX_IDEMPOTENCY_KEY = 255
_SERIES_SUFFIX_ROOM = len(f"-r{MAX_RESUBMISSIONS}")


def check_idempotency_key(key: object, *, series: bool = False) -> str:
    """``key`` stripped, if it is 1 to 255 visible ASCII characters (fewer for a ``series`` base).

    :raises RivyaValidationError: naming ``idempotency_key`` and the rule.
    """
    limit = MAX_IDEMPOTENCY_KEY - (_SERIES_SUFFIX_ROOM if series else 0)
    text = key.strip() if isinstance(key, str) else ""
    if not text or len(text) > limit or any(not 0x21 <= ord(c) <= 0x7E for c in text):
        raise RivyaValidationError(
            f"idempotency_key: must be 1 to {limit} visible ASCII characters (got {key!r:.80})",
            field="idempotency_key",
        )
    return text


def client_request_id_for(identity: str) -> str:
    """Trace id carrying ``identity``, shortened with a hash past the API's 128 characters."""
    candidate = f"airflow:{identity}"
    if len(candidate) <= MAX_CLIENT_REQUEST_ID:
        return candidate
    digest = hashlib.sha256(candidate.encode()).hexdigest()[:16]
    return f"{candidate[: MAX_CLIENT_REQUEST_ID - 17]}~{digest}"


def derive_idempotency_key(identity: str, body_sha256: str) -> str:
    """Deterministic key: the same identity and request body give the same key, every time."""
    digest = hashlib.sha256(f"{identity}\n{body_sha256}".encode()).hexdigest()
    return f"airflow-rivya-{digest[:40]}"


def resubmission_key(base_key: str, round_number: int) -> str:
    """Key of the ``round_number``-th fresh submission after replayed generations had failed."""
    return base_key if round_number == 0 else f"{base_key}-r{round_number}"


def parse_timestamp(value: str | None) -> float | None:
    """Epoch seconds of an API timestamp (ISO 8601, ``Z`` or offset), or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def is_earlier_attempt(created: CreateResult, started: float) -> bool:
    """Whether a create answer is a replay of a generation an earlier call made.

    The ``Idempotent-Replayed`` header says so when the API sends it (its replay semantics are
    not documented); otherwise a generation created well before ``started`` is a replay.
    """
    if created.replayed:
        return True
    created_at = parse_timestamp(created.generation.created_at)
    return created_at is not None and created_at < started - EARLIER_ATTEMPT_MARGIN


@dataclasses.dataclass(frozen=True)
class Submission:
    """The generation a piece of work is paying for, and where in the key series it stands.

    :param generation: the generation as the API last described it.
    :param base_key: the first key of the series (derived, or the caller's own).
    :param round: how many fresh submissions followed failed replays (0: the first key).
    :param replayed: the create answer was a replay of an existing generation.
    :param reattached: found through ``previous`` with a GET; nothing was created.
    :param series: the key series used when ``base_key``'s had met another body (a conflict).
    """

    generation: Generation
    base_key: str
    round: int = 0
    replayed: bool = False
    reattached: bool = False
    series: str | None = None

    @property
    def key(self) -> str:
        """The ``Idempotency-Key`` that created (or replayed) :attr:`generation`."""
        return resubmission_key(self.series or self.base_key, self.round)

    def record(self) -> dict[str, Any]:
        """Plain JSON to keep between calls (e.g. Airflow's task state store)."""
        return {"generation_id": self.generation.id, "base_key": self.base_key, "round": self.round}


def _previous_round(previous: Mapping[str, Any] | None, base_key: str) -> tuple[str, int] | None:
    """``(generation_id, round)`` of a saved record of the same series, else None."""
    if not isinstance(previous, Mapping) or previous.get("base_key") != base_key:
        return None
    generation_id = previous.get("generation_id")
    saved_round = previous.get("round", 0)
    if not isinstance(generation_id, str) or not generation_id:
        return None
    return generation_id, saved_round if isinstance(saved_round, int) and saved_round >= 0 else 0


def submit_once(
    create: Callable[[GenerationRequest, str], Generator[Any, Any, CreateResult]],
    get: Callable[[str], Generator[Any, Any, Generation]],
    clock: Callable[[], float],
    request: GenerationRequest,
    base_key: str,
    previous: Mapping[str, Any] | None = None,
) -> Generator[Any, Any, Submission]:
    """The generation this work pays for, created at most once per key (a client operation).

    ``create`` and ``get`` are the client core's create and status operations.
    """
    round_number = 0
    saved = _previous_round(previous, base_key)
    if saved is not None:
        earlier = yield from get(saved[0])
        if not earlier.failed:
            return Submission(earlier, base_key, saved[1], reattached=True)
        round_number = saved[1] + 1
    started = clock()
    series = base_key
    while True:
        try:
            created = yield from create(request, resubmission_key(series, round_number))
        except IdempotencyConflictError:
            if series != base_key:
                raise
            # The key names this work, but the API holds it with another body: the same work
            # asked with other bytes on the wire (a reference re-uploaded under a new URL), and
            # no record of its generation was kept. That generation cannot be found by key, so
            # this body gets its own series: it is paid once more.
            series = derive_idempotency_key(base_key, request.body_sha256())
            log.warning(
                "Idempotency key %s is held by the same work sent with another body (e.g. a "
                "re-uploaded reference) and no record of its generation was kept (the task "
                "state store needs Airflow 3.3); submitting under %s, which is paid again",
                resubmission_key(base_key, round_number),
                resubmission_key(series, round_number),
            )
            continue
        generation = created.generation
        if not generation.failed or not is_earlier_attempt(created, started):
            break
        if round_number >= MAX_RESUBMISSIONS:
            break  # ends as the failed generation it is; never loop without end
        log.info(
            "Generation %s replayed for this work had failed (credits released); "
            "submitting a fresh one",
            generation.id,
        )
        round_number += 1
    return Submission(
        generation,
        base_key,
        round_number,
        replayed=created.replayed,
        series=None if series == base_key else series,
    )
