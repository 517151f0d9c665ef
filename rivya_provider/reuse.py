"""Paying only for what changed: reuse stored images whose request is unchanged and intact.

The one rule behind ``skip_unchanged``, used by the batch operator (per item key) and the
generate operator (per ``output_name``):

- An item's *request digest* is :meth:`GenerationRequest.content_sha256`: the model, the prompt
  after templating, the params, and each reference by the digest of its bytes. The same inputs
  give the same digest on any run, try or worker.
- A key is reused when its latest record says ``succeeded`` with the same digest, and every image
  it lists is in the folder with the recorded size (``verify="sha256"``: the recorded hash).
- The records: the folder's ``index.jsonl`` (one read), and per key
  ``.rivya-stored/<key>.json``, written as ``storing`` before the key's images are downloaded
  and as ``succeeded`` once they are stored; a ``storing`` record is never reused (its file may
  be half replaced by a newer image). A batch writes ``.rivya-stored/in-progress`` before it
  stores anything and removes it after its index: while it is there, a run died between the
  two, and the records written since it override the index. Otherwise a key's record is read
  only when the index does not list the key, so a normal refresh reads no record at all.
- Sizes and record times come from one listing of the folder and one of its records folder,
  never one request per file.

Imported at run time only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rivya_provider.api.errors import RivyaValidationError
from rivya_provider.storage import write_atomically

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from rivya_provider.api.models import GenerationRequest

__all__ = [
    "INDEX_NAME",
    "RECORDS_FOLDER",
    "VERIFY_MODES",
    "Listing",
    "begin_storing",
    "check_reusable_request",
    "check_verify",
    "end_storing",
    "list_folder",
    "mark_storing",
    "record_stored",
    "request_digest",
    "reusable",
    "stored_for_generation",
]

log = logging.getLogger(__name__)

#: Per-key records of what is stored, in a hidden folder next to the images.
RECORDS_FOLDER = ".rivya-stored"
INDEX_NAME = "index.jsonl"
#: ``size``: each image is listed with its recorded size; ``sha256``: its bytes are hashed too.
VERIFY_MODES = ("size", "sha256")
#: Written before a batch stores anything, removed after its index (a name no key can have).
IN_PROGRESS = "in-progress"


def request_digest(request: GenerationRequest) -> str:
    """The request digest (:meth:`GenerationRequest.content_sha256`, one definition)."""
    return request.content_sha256()


def check_verify(value: object, field: str = "verify_unchanged") -> str:
    """``size`` or ``sha256``.

    :raises RivyaValidationError: naming ``field`` and the rule.
    """
    if value not in VERIFY_MODES:
        raise RivyaValidationError(
            f"{field}: must be 'size' (list the folder once) or 'sha256' (hash every reused "
            f"image too); got {value!r}",
            field=field,
        )
    return str(value)


def check_reusable_request(request: GenerationRequest, field: str) -> None:
    """Refuse a reference known only by its URL: whether the image behind it changed cannot be
    told, so ``skip_unchanged`` could reuse an image made from an older reference.

    :raises RivyaValidationError: naming ``field`` and the rule.
    """
    unknown = request.references_without_digest()
    if unknown:
        raise RivyaValidationError(
            f"{field}: skip_unchanged compares references by the sha256 of their bytes, and "
            f"{unknown[0]!r:.100} has none; pass what RivyaFileUploadOperator returns (it "
            "carries sha256), or add 'sha256' to the item",
            field=field,
        )


@dataclasses.dataclass(frozen=True)
class Listing:
    """What one listing of a folder (and one of its records folder) says.

    :param files: size and modification time (epoch seconds, when the store gives one) by name.
    :param records: modification time of each key's record, by key.
    :param in_progress: the in-progress mark is there (a batch died before its index), and
        its modification time.
    """

    files: dict[str, tuple[int, float | None]]
    records: dict[str, float | None]
    in_progress: tuple[bool, float | None] = (False, None)


def _modified(info: Mapping[str, Any]) -> float | None:
    """Epoch seconds of a listing entry, whichever way the file system names it."""
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(name)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _entries(folder: ObjectStoragePath) -> dict[str, tuple[int, float | None]]:
    fs = folder.fs
    path = folder.path
    fs.invalidate_cache(path)  # a cached listing would miss what this run just wrote
    try:
        infos = fs.ls(path, detail=True)
    except FileNotFoundError:
        return {}
    entries: dict[str, tuple[int, float | None]] = {}
    for info in infos:
        if info.get("type") != "file":
            continue
        name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
        entries[name] = (int(info.get("size") or 0), _modified(info))
    return entries


def list_folder(folder: ObjectStoragePath) -> Listing:
    """List ``folder`` and its records folder (two listings, whatever the number of files)."""
    listed = _entries(folder / RECORDS_FOLDER)
    records = {
        name[: -len(".json")]: modified
        for name, (_, modified) in listed.items()
        if name.endswith(".json") and not name.startswith(".")
    }
    mark = listed.get(IN_PROGRESS)
    in_progress = (True, mark[1]) if mark is not None else (False, None)
    return Listing(files=_entries(folder), records=records, in_progress=in_progress)


def _record_path(folder: ObjectStoragePath, key: str) -> ObjectStoragePath:
    return folder / RECORDS_FOLDER / f"{key}.json"


def _read_json(path: ObjectStoragePath) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def latest_records(
    folder: ObjectStoragePath, keys: Collection[str], listing: Listing
) -> dict[str, dict[str, Any]]:
    """The latest record of each of ``keys``: its line in ``index.jsonl``, unless its own record
    says more (read only then): the index does not list the key, or a batch died after its
    in-progress mark and the record is not older than the mark."""
    wanted = set(keys)
    records: dict[str, dict[str, Any]] = {}
    if INDEX_NAME in listing.files:
        try:
            text = (folder / INDEX_NAME).read_text()
        except OSError:
            text = ""
        for raw in text.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("key") in wanted:
                records[entry["key"]] = entry
    interrupted, since = listing.in_progress
    for key, modified in listing.records.items():
        if key not in wanted:
            continue
        # Timestamps may be truncated to the second (S3): ">=" still orders them.
        newer = interrupted and (since is None or modified is None or modified >= since)
        if key in records and not newer:
            continue
        record = _read_json(_record_path(folder, key))
        if isinstance(record, dict) and record.get("key") == key:
            records[key] = record
    return records


def _sha256_of(path: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def intact_images(
    folder: ObjectStoragePath, images: object, listing: Listing, verify: str
) -> list[dict[str, Any]] | None:
    """The recorded images, each at its place in ``folder``, if every one is there with its
    recorded size (and hash, with ``verify="sha256"``); else ``None``."""
    if not isinstance(images, list) or not images:
        return None
    found: list[dict[str, Any]] = []
    for image in images:
        if not isinstance(image, Mapping) or not isinstance(image.get("path"), str):
            return None
        name = image["path"].rstrip("/").rsplit("/", 1)[-1]
        listed = listing.files.get(name)
        if listed is None or listed[0] != image.get("size_bytes"):
            return None
        path = folder / name
        if verify == "sha256" and _sha256_of(path) != image.get("sha256"):
            return None
        found.append({**image, "path": str(path)})
    return found


def reusable(
    folder: ObjectStoragePath, wanted: Mapping[str, str], verify: str = "size"
) -> dict[str, dict[str, Any]]:
    """The stored items to reuse: ``wanted`` maps each key to its request digest; the answer
    maps each reusable key to its record (images at their place in ``folder``)."""
    listing = list_folder(folder)
    records = latest_records(folder, wanted, listing)
    found: dict[str, dict[str, Any]] = {}
    for key, digest in wanted.items():
        record = records.get(key)
        if record is None or record.get("status") != "succeeded" or record.get("digest") != digest:
            continue
        images = intact_images(folder, record.get("images"), listing, verify)
        if images is not None:
            found[key] = {**record, "images": images}
    return found


def begin_storing(folder: ObjectStoragePath) -> None:
    """Before a batch stores anything: records written from now on may be newer than the
    index, until :func:`end_storing`."""
    mark = folder / RECORDS_FOLDER / IN_PROGRESS
    mark.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(mark, "a batch is storing; its index is not written yet\n")


def end_storing(folder: ObjectStoragePath) -> None:
    """After the batch's index is written: the index is the latest word again."""
    mark = folder / RECORDS_FOLDER / IN_PROGRESS
    with contextlib.suppress(FileNotFoundError):
        mark.unlink()


def mark_storing(
    folder: ObjectStoragePath, key: str, digest: str | None, generation_id: str
) -> None:
    """Before a key's images are replaced: its record says ``storing`` (never reused) until
    :func:`record_stored` says what was stored."""
    record = {"key": key, "status": "storing", "digest": digest, "generation_id": generation_id}
    _write_record(folder, key, record)


def record_stored(
    folder: ObjectStoragePath,
    key: str,
    digest: str | None,
    generation_id: str,
    images: list[dict[str, Any]],
    final_credits: int | None,
) -> None:
    """After a key's images are stored: what they are, for a retry of this run (not downloaded
    again) and for the next run (reused when its request is unchanged)."""
    record = {
        "key": key,
        "status": "succeeded",
        "digest": digest,
        "generation_id": generation_id,
        "images": images,
        "final_credits": final_credits,
    }
    _write_record(folder, key, record)


def _write_record(folder: ObjectStoragePath, key: str, record: dict[str, Any]) -> None:
    path = _record_path(folder, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(record, separators=(",", ":")))


def stored_for_generation(
    folder: ObjectStoragePath, key: str, generation_id: str, listing: Listing
) -> dict[str, Any] | None:
    """The record of ``key`` if an earlier try stored this very generation and every image is
    still intact (a retry of the same run does not download it again). Read only when
    ``listing`` holds a record for ``key``."""
    if key not in listing.records:
        return None
    record = _read_json(_record_path(folder, key))
    if not isinstance(record, dict) or record.get("status") != "succeeded":
        return None
    if record.get("generation_id") != generation_id:
        return None
    images = intact_images(folder, record.get("images"), listing, "size")
    return None if images is None else {**record, "images": images}
