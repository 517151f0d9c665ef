# Over 400 lines: one item lifecycle (load, plan, submit, outcomes, store, index), a step each.
"""Catalogue-scale generation in one task: items -> a checked plan -> submissions -> stored images.

The rules of :class:`~rivya_provider.operators.batch.RivyaBatchGenerateImagesOperator`, kept out of
the operator: reading and checking items (every one before anything is sent), paying once per
item (the single operator's rule, per item key), storing each succeeded item's images under its
key, and the ``index.jsonl`` and summary that describe the batch. Imported at run time only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.sdk import ObjectStoragePath

from rivya_provider.api.errors import (
    AuthenticationError,
    InsufficientCreditsError,
    PermissionDeniedError,
    RivyaError,
    RivyaValidationError,
)
from rivya_provider.storage import (
    as_storage_path,
    check_output_name,
    output_stem,
    remove_stale_parts,
    store_images,
)

if TYPE_CHECKING:
    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.idempotency import Submission
    from rivya_provider.api.models import Generation, GenerationRequest
    from rivya_provider.storage import InfoLogger
    from rivya_provider.triggers.batch import BatchEvent

__all__ = [
    "ITEM_FIELDS",
    "BatchDefaults",
    "ItemOutcome",
    "PlannedItem",
    "checked_concurrency",
    "checked_failed_fraction",
    "load_items",
    "outcomes_after_wait",
    "plan_items",
    "store_outcomes",
    "submit_items",
    "summarize",
    "write_index",
]

log = logging.getLogger(__name__)

#: The fields an item may have; every other field is refused (a typo must not be lost).
ITEM_FIELDS = (
    "key",
    "prompt",
    "image_size",
    "output_format",
    "model_params",
    "reference_media_items",
)
#: Errors that stop the whole batch: they would fail every other item the same way.
ACCOUNT_ERRORS = (AuthenticationError, PermissionDeniedError, InsufficientCreditsError)
#: Where a stored item's record is kept, so a retry does not download it again.
STORED_FOLDER = ".rivya-stored"
INDEX_NAME = "index.jsonl"


@dataclasses.dataclass(frozen=True)
class BatchDefaults:
    """Batch-wide values an item may override (all but ``model``)."""

    model: str = "qwen-image"
    image_size: str | None = None
    output_format: str | None = None
    model_params: Any = None
    reference_media_items: Any = None


@dataclasses.dataclass(frozen=True)
class PlannedItem:
    """One checked item: its key (names its files and its idempotency) and its request."""

    position: int
    key: str
    request: GenerationRequest
    output_format: str | None


@dataclasses.dataclass
class ItemOutcome:
    """Where one item ended; a line of ``index.jsonl``."""

    key: str
    generation_id: str | None = None
    status: str = "pending"
    images: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    reserved_credits: int | None = None
    final_credits: int | None = None
    error: dict[str, Any] | None = None
    created_at: float | None = None  # epoch seconds; for the first status check, not indexed

    def line(self) -> dict[str, Any]:
        """The JSON object written to ``index.jsonl``."""
        return {
            "key": self.key,
            "generation_id": self.generation_id,
            "status": self.status,
            "images": self.images,
            "final_credits": self.final_credits,
            "error": self.error,
        }


def _refuse(field: str, rule: str) -> RivyaValidationError:
    return RivyaValidationError(f"{field}: {rule}", field=field)


def checked_failed_fraction(value: object) -> float:
    """``max_failed_fraction``: a number from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _refuse("max_failed_fraction", f"must be a number from 0 to 1 (got {value!r})")
    return float(value)


def checked_concurrency(value: object) -> int:
    """``max_concurrency``: a whole number from 1 to 64."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise _refuse("max_concurrency", f"must be a whole number from 1 to 64 (got {value!r})")
    return value


def load_items(items: object) -> list[Any]:
    """The batch's items: a list of dicts as given, or read from a JSON Lines file.

    :param items: a list (e.g. an upstream task's XCom), or the path or URI of a ``.jsonl`` file
        readable through ObjectStoragePath (one JSON object per line; blank lines skipped).
    :raises RivyaValidationError: naming ``items`` (and the line) and the rule.
    """
    if isinstance(items, (list, tuple)):
        return list(items)
    if isinstance(items, (str, ObjectStoragePath)):
        if isinstance(items, str) and not items.strip():
            raise _refuse("items", "must be a list of item dicts or a JSON Lines file; got ''")
        path = as_storage_path(items)
        try:
            text = path.read_text()
        except (OSError, ValueError) as exc:
            raise _refuse("items", f"cannot read {path}: {exc}") from None
        loaded: list[Any] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                loaded.append(json.loads(raw))
            except ValueError as exc:
                raise _refuse("items", f"{path} line {number} is not JSON ({exc})") from None
        return loaded
    raise _refuse(
        "items",
        "must be a list of item dicts, or the path or URI of a JSON Lines file (got "
        f"{type(items).__name__} {items!r:.60})",
    )


def plan_items(raw_items: Sequence[Any], defaults: BatchDefaults) -> list[PlannedItem]:
    """Check every item before anything is sent; the first bad one names its key and field.

    :raises RivyaValidationError: ``items[<n>]...`` with the item's key, the field and the rule;
        a duplicate key names both positions.
    """
    from rivya_provider.request_builder import build_request

    planned: list[PlannedItem] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(raw_items):
        where = f"items[{position}]"
        if not isinstance(item, Mapping):
            raise _refuse(where, f"must be a dict with a prompt (got {type(item).__name__})")
        unknown = sorted(set(map(str, item)) - set(ITEM_FIELDS))
        if unknown:
            raise _refuse(
                where,
                f"unknown field(s) {', '.join(unknown)}; an item takes {', '.join(ITEM_FIELDS)}",
            )
        key = item.get("key", f"item-{position:05d}")
        check_output_name(key, field=f"{where}.key")
        if key in seen:
            raise _refuse(f"{where}.key", f"{key!r} is used twice (items[{seen[key]}] and {where})")
        seen[key] = position

        def value(name: str, item: Mapping[str, Any] = item) -> Any:
            given = item.get(name)
            return given if given is not None else getattr(defaults, name)

        try:
            request = build_request(
                model=defaults.model,
                prompt=item.get("prompt"),
                image_size=value("image_size"),
                output_format=value("output_format"),
                model_params=value("model_params"),
                reference_media_items=value("reference_media_items"),
            )
        except RivyaValidationError as exc:
            raise RivyaValidationError(
                f"{where} (key {key!r}).{exc.message}",
                field=f"{where}.{exc.field}" if exc.field else where,
            ) from None
        planned.append(PlannedItem(position, key, request, value("output_format")))
    return planned


def traced(item: PlannedItem, client_request_id: str) -> PlannedItem:
    """``item`` with its request carrying ``client_request_id`` (the caller's trace id)."""
    request = item.request.model_copy(update={"client_request_id": client_request_id})
    return dataclasses.replace(item, request=request)


def submit_items(
    client: RivyaClient,
    planned: Sequence[PlannedItem],
    base_key: Callable[[PlannedItem], str],
    previous: Mapping[str, Any],
    concurrency: int,
) -> dict[str, Submission | RivyaError]:
    """Pay for each item at most once (``submit_generation`` per item), ``concurrency`` at a time.

    An item the API refuses for its own reason is recorded as its error; an account-wide refusal
    (auth, scope, credits) or a transient error that outlived the retries is raised once every
    submission has ended: an Airflow retry then replays what was created.
    """

    def submit(item: PlannedItem) -> Submission | RivyaError:
        try:
            return client.submit_generation(
                item.request, base_key(item), previous=previous.get(item.key)
            )
        except ACCOUNT_ERRORS:
            raise
        except RivyaError as exc:
            if exc.retryable:
                raise
            return exc

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [(item.key, pool.submit(submit, item)) for item in planned]
    results: dict[str, Submission | RivyaError] = {}
    first_error: BaseException | None = None
    for key, future in futures:
        error = future.exception()
        if error is not None:
            first_error = first_error or error
            continue
        results[key] = future.result()
    if first_error is not None:
        raise first_error
    return results


def submitted_outcomes(
    planned: Sequence[PlannedItem], results: Mapping[str, Submission | RivyaError]
) -> tuple[dict[str, ItemOutcome], dict[str, Any]]:
    """Each item's outcome after submission (``refused`` with the API's error, or its
    generation), and the submission records to keep for a retry, by key."""
    outcomes: dict[str, ItemOutcome] = {}
    records: dict[str, Any] = {}
    for item in planned:
        result = results[item.key]
        if isinstance(result, RivyaError):
            error = {"code": result.code, "message": result.message}
            outcomes[item.key] = ItemOutcome(item.key, status="refused", error=error)
            continue
        records[item.key] = result.record()
        generation = result.generation
        outcomes[item.key] = ItemOutcome(
            item.key,
            generation_id=generation.id,
            status=generation.status,
            reserved_credits=generation.reserved_credits,
            created_at=generation.created_epoch,
        )
    return outcomes, records


def submission_state(
    planned: Sequence[PlannedItem], outcomes: Mapping[str, ItemOutcome]
) -> dict[str, Any]:
    """What a resume needs of one round of submissions, by position in ``planned``: generation
    ids (``None``: refused), the refusals' errors, the credits reserved, creation times."""
    ordered = [outcomes[item.key] for item in planned]
    return {
        "ids": [o.generation_id for o in ordered],
        "errors": {str(p): o.error for p, o in enumerate(ordered) if o.error},
        "reserved": [o.reserved_credits for o in ordered],
        "created": [
            None if o.created_at is None else round(o.created_at, 1)
            for o in ordered
            if o.generation_id
        ],
    }


def plan_digest(planned: Sequence[PlannedItem]) -> str:
    """Names the items submitted (keys and contents), to recognise them on resume."""
    digest = hashlib.sha256()
    for item in planned:
        digest.update(f"{item.key}\n{item.request.content_sha256()}\n".encode())
    return digest.hexdigest()


def failed_positions(state: Mapping[str, Any], event: BatchEvent) -> list[int]:
    """Positions of the items whose generation failed in this wait (its credits released), to
    submit once more; not those whose status could not be read (e.g. not found)."""
    waited = [position for position, gid in enumerate(state.get("ids", [])) if gid]
    return sorted(waited[rank] for rank in event.failed if rank not in event.unreadable)


def final_outcomes(
    planned: Sequence[PlannedItem], state: Mapping[str, Any], event: BatchEvent
) -> dict[str, ItemOutcome]:
    """Each item's outcome after the last wait. With a second round (``state["second_round"]``),
    the first wait's event (kept there) tells the items not resubmitted, ``event`` the others."""
    from rivya_provider.triggers.batch import BatchEvent

    second = state.get("second_round")
    if not isinstance(second, Mapping):
        return outcomes_after_wait(planned, state, event)
    first_event = BatchEvent.parse(second.get("first_event"))
    outcomes = outcomes_after_wait(planned, state, first_event)
    retried = [planned[position] for position in second.get("positions", [])]
    for key, outcome in outcomes_after_wait(retried, second, event).items():
        outcomes[key] = outcome
    return outcomes


def outcomes_after_wait(
    planned: Sequence[PlannedItem], state: Mapping[str, Any], event: BatchEvent
) -> dict[str, ItemOutcome]:
    """Each item's outcome from what the submit recorded (``state``) and where the wait ended.

    ``state`` holds, by item position, the generation ids (``None``: refused at submit), the
    refusals' errors and the credits reserved; the event names generations by their rank among
    those that have an id.
    """
    ids: list[str | None] = list(state.get("ids", []))
    errors: Mapping[str, Any] = state.get("errors", {})
    reserved: list[int | None] = list(state.get("reserved", []))
    waited = [position for position, gid in enumerate(ids) if gid]
    outcomes: dict[str, ItemOutcome] = {}
    for position, item in enumerate(planned):
        outcomes[item.key] = ItemOutcome(
            item.key,
            generation_id=ids[position] if position < len(ids) else None,
            status="refused",
            reserved_credits=reserved[position] if position < len(reserved) else None,
            error=errors.get(str(position)),
        )
    for rank in event.succeeded:
        outcomes[planned[waited[rank]].key].status = "succeeded"
    for rank, (code, message) in event.failed.items():
        outcome = outcomes[planned[waited[rank]].key]
        outcome.status = "failed"
        outcome.error = {"code": code, "message": message}
    for rank in event.pending:
        outcome = outcomes[planned[waited[rank]].key]
        outcome.status = "timed_out"
        outcome.error = {"code": "timeout", "message": "still running at the deadline"}
    return outcomes


def _stored_record(folder: ObjectStoragePath, key: str) -> ObjectStoragePath:
    return folder / STORED_FOLDER / f"{key}.json"


def _already_stored(
    folder: ObjectStoragePath, key: str, generation_id: str
) -> list[dict[str, Any]] | None:
    """The images an earlier try stored for this item's generation, if all are still intact."""
    record = _stored_record(folder, key)
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("generation_id") != generation_id:
        return None
    images = saved.get("images")
    if not isinstance(images, list) or not images:
        return None
    for image in images:
        try:
            path = ObjectStoragePath(image["path"])
            if path.stat().st_size != image["size_bytes"]:
                return None
        except (OSError, KeyError, TypeError, ValueError):
            return None
    return images


def _remember_stored(
    folder: ObjectStoragePath, key: str, generation_id: str, images: list[dict[str, Any]]
) -> None:
    record = _stored_record(folder, key)
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.parent / f".{key}.{uuid.uuid4().hex}.part"
    partial.write_text(json.dumps({"generation_id": generation_id, "images": images}))
    partial.rename(record)


def store_outcomes(
    client: RivyaClient,
    planned: Sequence[PlannedItem],
    outcomes: dict[str, ItemOutcome],
    output_path: str | ObjectStoragePath,
    concurrency: int,
    task_log: InfoLogger,
) -> None:
    """Store every succeeded item's images under its key (``<key>_<n>.<ext>``), ``concurrency``
    at a time, each atomically; an item stored intact by an earlier try is not downloaded again.

    Each succeeded generation is read again first (fresh result URLs). An item whose images
    cannot be stored gets status ``store_failed`` with the error; the others are unaffected.
    """
    folder = as_storage_path(output_path)
    remove_stale_parts(folder, [output_stem(item.key) for item in planned], task_log)

    def store(item: PlannedItem) -> None:
        outcome = outcomes[item.key]
        if outcome.status != "succeeded" or outcome.generation_id is None:
            return
        kept = _already_stored(folder, item.key, outcome.generation_id)
        if kept is not None:
            outcome.images = kept
            task_log.info("%s: stored by an earlier try, not downloaded again", item.key)
            return
        try:
            generation: Generation = client.get_generation(outcome.generation_id)
            outcome.final_credits = generation.final_credits
            if not generation.result_urls:
                raise RivyaError(
                    f"generation {generation.id} says succeeded but lists no result",
                    code="invalid_response",
                )
            outcome.images = store_images(
                client,
                generation,
                folder,
                item.output_format,
                task_log,
                name=item.key,
                clean_stale_parts=False,
            )
            _remember_stored(folder, item.key, generation.id, outcome.images)
        except RivyaError as exc:
            outcome.status = "store_failed"
            outcome.error = {"code": exc.code, "message": exc.message}

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(store, planned))


def write_index(output_path: str | ObjectStoragePath, outcomes: Sequence[ItemOutcome]) -> str:
    """Write ``<output_path>/index.jsonl`` atomically (one line per item); return its path."""
    folder = as_storage_path(output_path)
    index = folder / INDEX_NAME
    partial = folder / f".{INDEX_NAME}.{uuid.uuid4().hex}.part"
    with partial.open("w") as sink:
        for outcome in outcomes:
            sink.write(json.dumps(outcome.line(), separators=(",", ":")) + "\n")
    partial.rename(index)
    return str(index)


def summarize(
    outcomes: Sequence[ItemOutcome], index_path: str, estimate: str | None
) -> dict[str, Any]:
    """The task's small return value: counts by status, credits, the index (no per-item data)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return {
        "items": len(outcomes),
        "by_status": dict(sorted(counts.items())),
        "credits_reserved": sum(o.reserved_credits or 0 for o in outcomes),
        "credits_spent": sum(o.final_credits or 0 for o in outcomes if o.status == "succeeded"),
        "estimate": estimate,
        "index": index_path,
    }
