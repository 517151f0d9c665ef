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

if TYPE_CHECKING:
    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.models import Generation

__all__ = ["MAX_IMAGE_BYTES", "InfoLogger", "as_storage_path", "build_manifest", "store_images"]

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
