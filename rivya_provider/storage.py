"""Storing a generation's images where the user said, and the manifest that describes them.

Used by every operator and sensor that ends with images: the generate operator, the generation
sensor (and the upload operator, for where a source file is). Imported at run time only, never
at DAG-parse time.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from airflow.sdk import ObjectStoragePath

from rivya_provider.api.errors import RivyaValidationError

if TYPE_CHECKING:
    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.models import Generation

__all__ = [
    "MAX_IMAGE_BYTES",
    "InfoLogger",
    "as_storage_path",
    "build_manifest",
    "prepare_output_location",
    "store_images",
]

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


class InfoLogger(Protocol):
    """The slice of a logger this module needs (an operator's ``self.log``)."""

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...


def as_storage_path(location: str | ObjectStoragePath) -> ObjectStoragePath:
    """Accept a plain local path, any URI, or an ObjectStoragePath."""
    if isinstance(location, ObjectStoragePath):
        return location
    text = str(location)
    if "://" in text:
        return ObjectStoragePath(text)
    return ObjectStoragePath(f"file://{os.path.abspath(os.path.expanduser(text))}")


def prepare_output_location(
    output_path: object, field: str = "output_path"
) -> ObjectStoragePath | None:
    """Check where images will go and create the folder; ``None`` keeps URLs only.

    Called before the first request, so nothing is paid for output that cannot be stored.

    :raises RivyaValidationError: naming ``field`` and the rule: not a string or path, blank, a
        scheme no filesystem serves here, a relative local path (it resolves differently on
        each worker), an existing file, or a folder that cannot be created.
    """
    if output_path is None:
        return None

    def refuse(rule: str) -> RivyaValidationError:
        return RivyaValidationError(f"{field}: {rule}", field=field)

    if isinstance(output_path, ObjectStoragePath):
        location = output_path
    elif isinstance(output_path, str):
        text = output_path.strip()
        if not text:
            raise refuse("must not be empty; give a folder or an object-storage URI, or None")
        if "://" not in text:
            local = os.path.expanduser(text)
            if not os.path.isabs(local):
                raise refuse(
                    f"{text!r} is a relative local path, which resolves differently on each "
                    "worker; give an absolute path (on a shared mount for several hosts) or an "
                    "object-storage URI such as s3://bucket/folder"
                )
            text = f"file://{os.path.normpath(local)}"
        try:
            location = ObjectStoragePath(text)
        except ValueError as exc:
            raise refuse(f"{exc} (in {text!r})") from None
    else:
        raise refuse(
            f"must be a folder path or URI string (got {type(output_path).__name__} "
            f"{output_path!r})"
        )
    try:
        location.fs  # noqa: B018 - resolves the filesystem: unknown schemes fail here
        if location.is_file():
            raise refuse(f"{location} is an existing file, not a folder")
        location.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        raise refuse(f"cannot use {location}: {exc}") from None
    return location


def _safe_stem(generation_id: str) -> str:
    """A file-name stem that no server-supplied id can turn into a path component."""
    stem = _UNSAFE_NAME_CHARS.sub("_", generation_id).strip("_")[:96]
    return stem or "generation"


def store_images(
    client: RivyaClient,
    generation: Generation,
    output_path: str | ObjectStoragePath | None,
    output_format: str | None,
    log: InfoLogger,
) -> list[dict[str, Any]]:
    """Stream every result URL to ``output_path`` and describe each image (no bytes).

    Each image is written under a temporary name in the same folder, then renamed to
    ``<generation_id>_<n>.<ext>``: readers never see a half-written file. ``None`` keeps URLs.
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
