"""Storing a generation's images where the user said, and the manifest that describes them.

Used by every operator and sensor that ends with images: the generate operator, the generation
sensor (and the upload operator, for where a source file is). Imported at run time only, never
at DAG-parse time.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Protocol

from airflow.sdk import ObjectStoragePath

from rivya_provider.api.errors import RivyaError, RivyaValidationError

if TYPE_CHECKING:
    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.models import DownloadResult, Generation

__all__ = [
    "MAX_IMAGE_BYTES",
    "InfoLogger",
    "as_storage_path",
    "build_manifest",
    "check_output_name",
    "is_local",
    "output_stem",
    "prepare_output_location",
    "store_images",
    "write_atomically",
]

#: Upper bound on one stored image; Rivya documents no output size, 64 MiB is far above any PNG.
MAX_IMAGE_BYTES = 64 * 1024 * 1024

_EXTENSION_BY_CONTENT_TYPE = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
}
_MIME_BY_OUTPUT_FORMAT = {"png": "image/png", "jpeg": "image/jpeg"}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,96}")
#: Downloads of one result before a body that is not the expected image fails the task.
IMAGE_ATTEMPTS = 3


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


def is_local(location: ObjectStoragePath) -> bool:
    """Whether ``location`` is on this machine's file system (not object storage)."""
    return location.protocol in ("", "file", "local")


def write_atomically(path: ObjectStoragePath, text: str) -> None:
    """Replace ``path`` with ``text``; a reader sees the old file or the new one, never a part.

    Locally a temporary file in the same folder is renamed over it. On object storage the
    finished text goes in one PUT (an object appears whole; a rename there is a copy).
    """
    if not is_local(path):
        path.write_text(text)
        return
    partial = path.parent / f".{path.name}.{uuid.uuid4().hex}.part"
    try:
        partial.write_text(text)
        partial.rename(path)
    except BaseException:
        if partial.exists():
            partial.unlink()
        raise


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
    except RivyaValidationError:
        raise
    except (ValueError, OSError) as exc:
        raise refuse(f"cannot use {location}: {exc}") from None
    except Exception as exc:  # the store's own errors, e.g. botocore's NoCredentialsError
        raise refuse(f"cannot use {location}: {type(exc).__name__}: {exc}") from None
    return location


def output_stem(generation_id: str) -> str:
    """The file-name stem of a generation's images: injective, and never a path trick.

    An id made only of ``[A-Za-z0-9_-]`` (at most 96 characters) is its own stem; any other id
    is cleaned and gets ``.<hash of the id>``, a form no plain id can take: ``job.1`` and
    ``job_1`` never share a file.
    """
    if _SAFE_ID.fullmatch(generation_id):
        return generation_id
    cleaned = _UNSAFE_NAME_CHARS.sub("_", generation_id).strip("_")[:64] or "generation"
    return f"{cleaned}.{hashlib.sha256(generation_id.encode()).hexdigest()[:16]}"


def check_output_name(name: object, field: str = "output_name") -> str | None:
    """``name`` if it can be a file-name stem as given: 1 to 96 of ``A-Z a-z 0-9 _ -``.

    :raises RivyaValidationError: naming ``field`` and the rule.
    """
    if name is None:
        return None
    if not isinstance(name, str) or not _SAFE_ID.fullmatch(name):
        raise RivyaValidationError(
            f"{field}: must be 1 to 96 characters of A-Z, a-z, 0-9, '_' and '-' (it names "
            f"the stored files; got {name!r:.80})",
            field=field,
        )
    return name


def _hostname() -> str:
    """This machine as Airflow names it on task instances (``[core] hostname_callable``)."""
    from airflow.utils.net import get_hostname

    return str(get_hostname())


def remove_stale_parts(
    folder: ObjectStoragePath,
    stems: Collection[str],
    log: InfoLogger,
    names: Collection[str] | None = None,
) -> None:
    """Remove the temporary files (``.<stem>_<n>.<random>.part``) an earlier, killed try left
    for these stems: one listing of the folder for them all (a batch of 1,000 items would
    otherwise list a growing folder 1,000 times; on object storage, 1,000 LIST requests), or
    none when the caller listed it already (``names``: the folder's file names)."""
    wanted = set(stems)
    if names is None:
        stale_files = list(folder.glob(".*.part"))
    else:
        stale_files = [folder / n for n in names if n.startswith(".") and n.endswith(".part")]
    for stale in stale_files:
        stem = stale.name[1:].rsplit(".", 2)[0].rpartition("_")[0]
        if stem in wanted:
            log.info("Removing %s, left by an interrupted earlier try", stale)
            stale.unlink()


def _checked_image_type(downloaded: DownloadResult, output_format: str | None, url: str) -> str:
    """The image type the bytes are; an answer that is not the expected image is refused.

    :raises RivyaError: ``invalid_image`` (retryable: the download may be repeated).
    """
    from rivya_provider.api.errors import RivyaError
    from rivya_provider.api.mime import sniff_mime

    actual = sniff_mime(downloaded.head, "image")
    declared = (downloaded.content_type or "").split(";")[0].strip().lower()
    declared = "image/jpeg" if declared == "image/jpg" else declared
    expected = _MIME_BY_OUTPUT_FORMAT.get(output_format or "")
    problem = None
    if actual not in _EXTENSION_BY_CONTENT_TYPE:
        problem = f"is not an image (starts {downloaded.head[:16]!r}, served as {declared or '?'})"
    elif declared.startswith("image/") and declared != actual:
        problem = f"is {actual} but was served as {declared}"
    elif expected is not None and actual != expected:
        problem = f"is {actual}, not the {expected} that was asked for"
    if problem is not None:
        raise RivyaError(
            f"result {url} {problem}; not stored", code="invalid_image", retryable=True
        )
    return actual or ""


def store_images(
    client: RivyaClient,
    generation: Generation,
    output_path: str | ObjectStoragePath | None,
    output_format: str | None,
    log: InfoLogger,
    name: str | None = None,
    *,
    clean_stale_parts: bool = True,
) -> list[dict[str, Any]]:
    """Stream every result URL to ``output_path`` and describe each image (no bytes).

    Files are named ``<name>_<n>.<ext>`` (``name`` defaults to the generation id).

    Each image is written under a temporary name in the same folder, checked by its magic bytes
    (a download that is not the expected image is tried again, then refused), then renamed to
    ``<stem>_<n>.<ext>``: readers never see a half-written file, nor a web page named ``.png``.
    ``None`` keeps URLs only. Temporary files a killed earlier try left for this name are
    removed first, unless ``clean_stale_parts`` is off (the caller did it for many names at
    once with :func:`remove_stale_parts`).
    """
    urls = generation.result_urls
    if output_path is None:
        return [
            {
                "url": url,
                "path": None,
                "host": None,
                "size_bytes": None,
                "sha256": None,
                "content_type": None,
            }
            for url in urls
        ]
    folder = as_storage_path(output_path)
    folder.mkdir(parents=True, exist_ok=True)
    stem = output_stem(name or generation.id)
    if clean_stale_parts:
        remove_stale_parts(folder, [stem], log)
    # A local file is on one machine: say which (object storage means the same everywhere).
    writer_host = _hostname() if is_local(folder) else None
    images: list[dict[str, Any]] = []
    for index, url in enumerate(urls):
        for attempt in range(1, IMAGE_ATTEMPTS + 1):
            partial = folder / f".{stem}_{index}.{uuid.uuid4().hex}.part"
            try:
                with partial.open("wb") as sink:
                    downloaded = client.download(url, sink, max_bytes=MAX_IMAGE_BYTES)
                content_type = _checked_image_type(downloaded, output_format, url)
                final = folder / f"{stem}_{index}.{_EXTENSION_BY_CONTENT_TYPE[content_type]}"
                partial.rename(final)
            except RivyaError as exc:
                if partial.exists():
                    partial.unlink()
                if exc.code != "invalid_image" or attempt == IMAGE_ATTEMPTS:
                    raise
                log.info("Downloading %s again (attempt %d): %s", url, attempt + 1, exc)
                continue
            except BaseException:
                if partial.exists():
                    partial.unlink()
                raise
            break
        images.append(
            {
                "url": url,
                "path": str(final),
                "host": writer_host,
                "size_bytes": downloaded.size_bytes,
                "sha256": downloaded.sha256,
                "content_type": content_type,
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
