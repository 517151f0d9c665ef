"""Shared by the generate operator and the generation sensor: identity, outputs, manifest, events.

Imported lazily (from ``execute``), never at DAG-parse time: it pulls in the API client.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol

from airflow.sdk import ObjectStoragePath
from pydantic import BaseModel, ConfigDict, ValidationError

from rivya_provider._compat import AirflowException, AirflowFailException
from rivya_provider.api.errors import (
    GenerationFailedError,
    GenerationTimeoutError,
    RivyaError,
)
from rivya_provider.api.models import Generation

if TYPE_CHECKING:
    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.models import CreateResult

#: Key of the generation id in XCom (pushed before deferring) and in the task state store.
GENERATION_ID_XCOM_KEY = "generation_id"
STATE_STORE_KEY = "rivya_generation"

#: Upper bound on one stored image; Rivya documents no output size, 64 MiB is far above any PNG.
MAX_IMAGE_BYTES = 64 * 1024 * 1024

_EXTENSION_BY_CONTENT_TYPE = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/webp": "webp",
}
_EXTENSION_BY_OUTPUT_FORMAT = {"png": "png", "jpeg": "jpg"}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_CLIENT_REQUEST_ID = 128


def airflow_identity(context: Mapping[str, Any]) -> str:
    """Return ``dag_id/task_id/run_id/map_index`` of the running task instance."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else map_index
    return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}/{map_index}"


def default_client_request_id(identity: str) -> str:
    """Trace id carrying the Airflow identity, shortened with a hash when over 128 characters."""
    candidate = f"airflow:{identity}"
    if len(candidate) <= _MAX_CLIENT_REQUEST_ID:
        return candidate
    digest = hashlib.sha256(candidate.encode()).hexdigest()[:16]
    return f"{candidate[: _MAX_CLIENT_REQUEST_ID - 17]}~{digest}"


def derive_idempotency_key(identity: str, body_sha256: str) -> str:
    """Deterministic key: same task instance + same request body -> same key, on every try."""
    digest = hashlib.sha256(f"{identity}\n{body_sha256}".encode()).hexdigest()
    return f"airflow-rivya-{digest[:40]}"


def resubmission_key(base_key: str, round_number: int) -> str:
    """Key for the ``round_number``-th fresh submission after replayed generations had failed."""
    return base_key if round_number == 0 else f"{base_key}-r{round_number}"


#: Fresh submissions one task instance may make after replayed generations had failed.
MAX_RESUBMISSIONS = 20
#: A generation created this long before the current try started belongs to an earlier try
#: (tolerates clock skew between the worker and the API).
_EARLIER_ATTEMPT_MARGIN = 30.0


def is_earlier_attempt(created: CreateResult, try_started: float) -> bool:
    """Whether a create answer is a replay of an earlier try's generation.

    The ``Idempotent-Replayed`` header says so when the API sends it (its replay semantics are
    not documented); otherwise a generation created well before this try started is a replay.
    """
    if created.replayed:
        return True
    created_at = parse_timestamp(created.generation.created_at)
    return created_at is not None and created_at < try_started - _EARLIER_ATTEMPT_MARGIN


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


def as_storage_path(output_path: str | ObjectStoragePath) -> ObjectStoragePath:
    """Accept a plain local path, any URI, or an ObjectStoragePath."""
    if isinstance(output_path, ObjectStoragePath):
        return output_path
    text = str(output_path)
    return ObjectStoragePath(text if "://" in text else f"file://{_absolute(text)}")


def _absolute(path: str) -> str:
    import os

    return os.path.abspath(os.path.expanduser(path))


def _safe_stem(generation_id: str) -> str:
    """A file-name stem that no server-supplied id can turn into a path component."""
    stem = _UNSAFE_NAME_CHARS.sub("_", generation_id).strip("_")[:96]
    return stem or "generation"


class InfoLogger(Protocol):
    """The slice of a logger this module needs (an operator's ``self.log``)."""

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...


def store_images(
    client: RivyaClient,
    generation: Generation,
    output_path: str | ObjectStoragePath | None,
    output_format: str | None,
    log: InfoLogger,
) -> list[dict[str, Any]]:
    """Stream every result URL to ``output_path`` and describe each image (no bytes).

    Each image is written under a temporary name in the same folder, then renamed to
    ``<generation_id>_<n>.<ext>``: readers never see a half-written file.
    """
    urls = generation.result.urls if generation.result else []
    if output_path is None:
        return [
            {"url": url, "path": None, "size_bytes": None, "sha256": None, "content_type": None}
            for url in urls
        ]
    folder = as_storage_path(output_path)
    folder.mkdir(parents=True, exist_ok=True)
    stem = _safe_stem(generation.id)
    images: list[dict[str, Any]] = []
    for index, url in enumerate(urls):
        partial = folder / f".{stem}_{index}.{uuid.uuid4().hex}.part"
        try:
            with partial.open("wb") as sink:
                downloaded = client.download(url, sink, max_bytes=MAX_IMAGE_BYTES)
            content_type = (downloaded.content_type or "").split(";")[0].strip().lower()
            extension = _EXTENSION_BY_CONTENT_TYPE.get(content_type) or (
                _EXTENSION_BY_OUTPUT_FORMAT.get(output_format or "", "bin")
            )
            final = folder / f"{stem}_{index}.{extension}"
            partial.rename(final)
        except BaseException:
            if partial.exists():
                partial.unlink()
            raise
        images.append(
            {
                "url": url,
                "path": str(final),
                "size_bytes": downloaded.size_bytes,
                "sha256": downloaded.sha256,
                "content_type": content_type or None,
            }
        )
        log.info("Stored %s -> %s (%d bytes)", url, final, downloaded.size_bytes)
    return images


def finish(
    client: RivyaClient,
    generation: Generation,
    *,
    output_path: str | ObjectStoragePath | None,
    output_format: str | None,
    client_request_id: str | None,
    log: InfoLogger,
) -> dict[str, Any]:
    """Store the outputs of a terminal generation, log the end line, return the manifest."""
    if generation.status != "succeeded":
        raise GenerationFailedError(generation)
    images = store_images(client, generation, output_path, output_format, log)
    elapsed = elapsed_since(generation)
    log.info(
        "Rivya generation %s succeeded%s: %s credits; %s",
        generation.id,
        f" after {elapsed:.1f} s" if elapsed is not None else "",
        generation.final_credits,
        ", ".join(str(i["path"]) for i in images if i["path"]) or "URLs only, not stored",
    )
    return build_manifest(generation, images, client_request_id)


def complete(
    event: Any,
    *,
    rivya_conn_id: str,
    output_path: str | ObjectStoragePath | None,
    output_format: str | None,
    client_request_id: str | None,
    log: InfoLogger,
) -> dict[str, Any]:
    """Resume after RivyaGenerationTrigger: validate its event, then finish or raise."""
    from rivya_provider.hooks.rivya import RivyaHook

    try:
        generation = raise_for_event(parse_event(event))
        with RivyaHook(rivya_conn_id=rivya_conn_id).get_client() as client:
            return finish(
                client,
                generation,
                output_path=output_path,
                output_format=output_format,
                client_request_id=client_request_id,
                log=log,
            )
    except RivyaError as exc:
        raise to_airflow_error(exc) from exc


def build_manifest(
    generation: Generation, images: list[dict[str, Any]], client_request_id: str | None
) -> dict[str, Any]:
    """The small JSON result pushed to XCom: ids, URLs, stored paths, sizes, hashes, credits."""
    result = generation.result
    return {
        "generation_id": generation.id,
        "model": generation.model,
        "status": generation.status,
        "primary_url": result.primary_url if result else None,
        "urls": list(result.urls) if result else [],
        "reserved_credits": generation.reserved_credits,
        "final_credits": generation.final_credits,
        "client_request_id": client_request_id,
        "images": images,
    }


def elapsed_since(generation: Generation) -> float | None:
    """Seconds since the generation was created, when the API says when that was."""
    created = parse_timestamp(generation.created_at)
    return None if created is None else max(0.0, time.time() - created)


class GenerationEvent(BaseModel):
    """The one event RivyaGenerationTrigger yields; validated before it is trusted."""

    model_config = ConfigDict(extra="allow")

    status: Literal["succeeded", "failed", "timeout", "error"]
    generation: dict[str, Any] | None = None
    generation_id: str | None = None
    message: str = ""
    error_code: str | None = None
    retryable: bool = False


def parse_event(event: Any) -> GenerationEvent:
    """Validate a trigger event; a missing or unknown status is never taken as success."""
    try:
        return GenerationEvent.model_validate(event)
    except ValidationError as exc:
        raise AirflowException(f"Malformed event from RivyaGenerationTrigger: {exc}") from None


def generation_from_event(event: GenerationEvent) -> Generation:
    """The generation an event carries; a terminal event without one is malformed."""
    if event.generation is None:
        raise AirflowException(f"Trigger event {event.status!r} carries no generation")
    try:
        return Generation.model_validate(event.generation)
    except ValidationError as exc:
        raise AirflowException(f"Malformed generation in trigger event: {exc}") from None


def raise_for_event(event: GenerationEvent) -> Generation:
    """Return the succeeded generation, or raise what the event means."""
    if event.status == "succeeded":
        generation = generation_from_event(event)
        if generation.status != "succeeded":
            raise AirflowException(
                f"Trigger reported success but generation {generation.id} is {generation.status!r}"
            )
        return generation
    if event.status == "failed":
        raise GenerationFailedError(generation_from_event(event))
    if event.status == "timeout":
        last = event.generation or {}
        raise GenerationTimeoutError(
            generation_id=str(last.get("id") or event.generation_id or "unknown"),
            last_status=last.get("status"),
        )
    message = f"Rivya API error while waiting: {event.error_code or 'error'}: {event.message}"
    if event.retryable:
        raise AirflowException(message)
    raise AirflowFailException(message)


def to_airflow_error(error: RivyaError) -> Exception:
    """Non-retryable API errors must not spend Airflow retries; the rest stay retryable."""
    if error.retryable or isinstance(error, (GenerationFailedError, GenerationTimeoutError)):
        return error
    return AirflowFailException(str(error))
