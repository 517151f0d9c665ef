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
from rivya_provider.reuse import (
    INDEX_NAME,
    begin_storing,
    end_storing,
    list_folder,
    mark_storing,
    record_stored,
    request_digest,
    stored_for_generation,
)
from rivya_provider.storage import (
    as_storage_path,
    check_output_name,
    output_stem,
    remove_stale_parts,
    store_images,
    write_atomically,
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
    "checked_only_keys",
    "find_reusable",
    "generated_items",
    "index_path",
    "load_items",
    "outcomes_after_wait",
    "plan_items",
    "reused_outcomes",
    "split_items",
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
#: The batch's description next to the index: counts, credits spent and saved.
SUMMARY_NAME = "summary.json"


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
    digest: str | None = None  # the request digest (``rivya_provider.reuse``)
    reused: bool = False  # carried forward from an earlier run; nothing was sent for it

    def line(self) -> dict[str, Any]:
        """The JSON object written to ``index.jsonl``."""
        return {
            "key": self.key,
            "generation_id": self.generation_id,
            "status": self.status,
            "reused": self.reused,
            "digest": self.digest,
            "images": self.images,
            "final_credits": self.final_credits,
            "error": self.error,
        }

    @classmethod
    def reused_from(cls, record: Mapping[str, Any]) -> ItemOutcome:
        """A reused item, as its record says (original generation id, images, credits)."""
        credits = record.get("final_credits")
        return cls(
            str(record["key"]),
            generation_id=record.get("generation_id"),
            status="succeeded",
            images=list(record.get("images") or []),
            final_credits=credits if isinstance(credits, int) else None,
            digest=record.get("digest"),
            reused=True,
        )


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
    Each item's record (``rivya_provider.reuse``) says ``storing`` before its files change and
    what was stored after, so a crash never leaves a record naming a file it does not hold.
    """
    for item in planned:
        outcomes[item.key].digest = request_digest(item.request)
    if not any(outcomes[item.key].status == "succeeded" for item in planned):
        return  # nothing to store: not even a listing
    folder = as_storage_path(output_path)
    listing = list_folder(folder)  # once for the batch: stale parts, what an earlier try stored
    begin_storing(folder)  # removed by write_index: records newer than the index are read
    stems = [output_stem(item.key) for item in planned]
    remove_stale_parts(folder, stems, task_log, names=listing.files)

    def store(item: PlannedItem) -> None:
        outcome = outcomes[item.key]
        if outcome.status != "succeeded" or outcome.generation_id is None:
            return
        kept = stored_for_generation(folder, item.key, outcome.generation_id, listing)
        if kept is not None:
            outcome.images = kept["images"]
            credits = kept.get("final_credits")
            outcome.final_credits = credits if isinstance(credits, int) else outcome.final_credits
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
            mark_storing(folder, item.key, outcome.digest, generation.id)
            outcome.images = store_images(
                client,
                generation,
                folder,
                item.output_format,
                task_log,
                name=item.key,
                clean_stale_parts=False,
            )
            record_stored(
                folder,
                item.key,
                outcome.digest,
                generation.id,
                outcome.images,
                generation.final_credits,
            )
        except RivyaError as exc:
            outcome.status = "store_failed"
            outcome.error = {"code": exc.code, "message": exc.message}

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(store, planned))


def find_reusable(
    planned: Sequence[PlannedItem], output_path: str | ObjectStoragePath, verify: object
) -> dict[str, dict[str, Any]]:
    """The records of the items to reuse (``rivya_provider.reuse``), by key.

    :raises RivyaValidationError: a bad ``verify_unchanged``, or an item's reference without
        its sha256 (naming the item).
    """
    from rivya_provider.reuse import check_reusable_request, check_verify, reusable

    mode = check_verify(verify)
    for item in planned:
        check_reusable_request(item.request, f"items[{item.position}].reference_media_items")
    wanted = {item.key: request_digest(item.request) for item in planned}
    return reusable(as_storage_path(output_path), wanted, mode)


def checked_only_keys(only_keys: object, planned: Sequence[PlannedItem]) -> set[str] | None:
    """``only_keys``: ``None``, or a list of keys of the items.

    :raises RivyaValidationError: naming ``only_keys`` and the rule.
    """
    if only_keys is None:
        return None
    if not isinstance(only_keys, (list, tuple, set)) or not all(
        isinstance(key, str) for key in only_keys
    ):
        raise _refuse("only_keys", f"must be a list of item keys (got {only_keys!r:.80})")
    known = {item.key for item in planned}
    unknown = sorted(set(only_keys) - known)
    if unknown:
        raise _refuse("only_keys", f"{unknown[0]!r} is not the key of any item")
    return set(only_keys)


def split_items(
    planned: Sequence[PlannedItem],
    output_path: str | ObjectStoragePath,
    *,
    verify: object,
    skip_unchanged: bool,
    only_keys: object,
    regenerate: bool,
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Which items a run does not generate: the records of those reused (by key), and the keys
    of those neither selected by ``only_keys`` nor stored intact (``not_selected``).

    With ``only_keys`` every other item keeps what is stored for it (reused when its request is
    unchanged and its images intact); the selected ones are generated, unless ``skip_unchanged``
    (and not ``regenerate``) finds them unchanged too. Decided before anything is sent.
    """
    from rivya_provider.reuse import check_verify

    check_verify(verify)  # checked even when nothing is reused: a typo must not pass silently
    selected = checked_only_keys(only_keys, planned)
    if selected is None and not skip_unchanged:
        return {}, set()
    # Generated whatever is stored: the selection, unless skip_unchanged may reuse it.
    fresh = selected if selected is not None and (regenerate or not skip_unchanged) else set()
    candidates = [item for item in planned if item.key not in fresh]
    found = find_reusable(candidates, output_path, verify) if candidates else {}
    if selected is None:
        return found, set()
    return found, {item.key for item in planned if item.key not in selected | found.keys()}


def generated_items(planned: Sequence[PlannedItem], state: Mapping[str, Any]) -> list[PlannedItem]:
    """The items a run generates: all but those ``state`` says are reused or not selected."""
    kept = set(state.get("reused") or []) | set(state.get("skipped") or [])
    return [item for item in planned if item.position not in kept]


def reused_outcomes(
    planned: Sequence[PlannedItem],
    state: Mapping[str, Any],
    output_path: str | ObjectStoragePath,
    verify: object,
    records: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, ItemOutcome]:
    """The outcomes of the items ``state`` says are reused, from ``records`` (else looked up
    again, e.g. after a deferral); one whose images changed meanwhile ends ``reuse_lost`` (the
    next run generates it). Items ``state`` says were not selected end ``not_selected``."""
    reused = set(state.get("reused") or [])
    skipped = set(state.get("skipped") or [])
    items = [item for item in planned if item.position in reused]
    outcomes: dict[str, ItemOutcome] = {}
    for item in planned:
        if item.position in skipped:
            outcomes[item.key] = ItemOutcome(
                item.key,
                status="not_selected",
                digest=request_digest(item.request),
                error={
                    "code": "not_selected",
                    "message": "not in only_keys and no intact stored image; a run without "
                    "only_keys generates it",
                },
            )
    if not items:
        return outcomes
    if records is None:
        records = find_reusable(items, output_path, verify)
    for item in items:
        record = records.get(item.key)
        if record is not None:
            outcomes[item.key] = ItemOutcome.reused_from(record)
            continue
        error = "its stored images changed while the batch ran; the next run generates it"
        outcomes[item.key] = ItemOutcome(
            item.key,
            status="reuse_lost",
            digest=request_digest(item.request),
            error={"code": "reuse_lost", "message": error},
        )
    return outcomes


def index_path(output_path: str | ObjectStoragePath) -> str:
    """Where the batch's ``index.jsonl`` is (or will be)."""
    return str(as_storage_path(output_path) / INDEX_NAME)


def write_index(
    output_path: str | ObjectStoragePath,
    outcomes: Sequence[ItemOutcome],
    summary: Mapping[str, Any] | None = None,
    prompts: Mapping[str, str] | None = None,
) -> str:
    """Replace ``<output_path>/index.jsonl`` (one line per item) atomically, after
    ``summary.json`` (when a summary is given) and the contact sheet ``index.html`` (when the
    prompts are given); return the index's path."""
    from rivya_provider.contact_sheet import SHEET_NAME, render_contact_sheet

    folder = as_storage_path(output_path)
    lines = [o.line() for o in outcomes]
    if summary is not None:
        write_atomically(folder / SUMMARY_NAME, json.dumps(summary, indent=1) + "\n")
    if prompts is not None:
        sheet = render_contact_sheet(lines, prompts, summary, title=f"Rivya batch: {folder}")
        write_atomically(folder / SHEET_NAME, sheet)
    index = folder / INDEX_NAME
    write_atomically(
        index, "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    )
    end_storing(folder)
    return str(index)


def summarize(
    outcomes: Sequence[ItemOutcome], index_path: str, estimate: str | None
) -> dict[str, Any]:
    """The task's small return value: counts by status, generated/reused/failed, credits spent
    by this run and an estimate of those saved by reuse (what the reused items cost when they
    were made), and the index (no per-item data)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    made = [o for o in outcomes if not o.reused]
    reused = [o for o in outcomes if o.reused]
    return {
        "items": len(outcomes),
        "by_status": dict(sorted(counts.items())),
        "generated": sum(1 for o in made if o.status == "succeeded"),
        "reused": len(reused),
        "failed": sum(1 for o in outcomes if o.status != "succeeded"),
        "credits_reserved": sum(o.reserved_credits or 0 for o in made),
        "credits_spent": sum(o.final_credits or 0 for o in made if o.status == "succeeded"),
        "credits_saved_estimate": sum(o.final_credits or 0 for o in reused),
        "estimate": estimate,
        "index": index_path,
    }
