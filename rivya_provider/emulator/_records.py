"""The emulator's records: an authenticated caller, a generation, a stored file, API errors.

Plain data with the small computations they own (a generation's status from its timestamps).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from rivya_provider.emulator._catalogue import ModelSpec, OutputSpec
from rivya_provider.emulator._config import KeyConfig

#: Share of a generation's latency it spends ``queued`` before ``processing``.
QUEUED_FRACTION = 0.2


class ApiError(Exception):
    """An error answered with Rivya's envelope ``{"error": {"code", "message", "requestId"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def validation_error(message: str) -> ApiError:
    """A 400 ``validation_failed`` error."""
    return ApiError(400, "validation_failed", message)


_formatted_second: tuple[int, str] = (-1, "")


def iso(timestamp: float) -> str:
    """``2026-05-11T00:00:00.000Z`` (UTC, milliseconds), the format of the documented examples."""
    global _formatted_second
    second, milli = divmod(int(timestamp * 1000), 1000)
    cached = _formatted_second  # one read: safe if several in-process emulators share it
    if cached[0] != second:  # strftime is the costliest step of a status request
        moment = datetime.fromtimestamp(second, tz=timezone.utc)
        cached = _formatted_second = (second, moment.strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{milli:03d}Z"


def new_id(prefix: str) -> str:
    """A random identifier such as ``task_3f...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclasses.dataclass(frozen=True)
class Caller:
    """The authenticated key of a request."""

    key: str
    config: KeyConfig

    @property
    def label(self) -> str:
        """The key's label (logs and ledger never show key values)."""
        return self.config.label


@dataclasses.dataclass(eq=False)
class Generation:
    """A Rivya task ("generation" in this code base)."""

    id: str
    owner: str
    owner_label: str
    model: ModelSpec
    prompt: str
    params: Mapping[str, Any]
    client_request_id: str | None
    idempotency_key: str | None
    output: OutputSpec
    seed: bytes
    created_mono: float
    created_wall: float
    latency: float
    failure: str | None
    reserved: int
    sig: str
    reference_file_id: str | None
    settled: bool = False
    timestamps: dict[str, str] = dataclasses.field(default_factory=dict)

    def status(self, now: float) -> str:
        """The status at monotonic time ``now``."""
        elapsed = now - self.created_mono
        if elapsed >= self.latency:
            return "failed" if self.failure else "succeeded"
        if elapsed >= self.latency * QUEUED_FRACTION:
            return "processing"
        return "queued"

    def updated_wall(self, status: str) -> float:
        """Wall-clock time of the transition into ``status``."""
        if status == "queued":
            return self.created_wall
        if status == "processing":
            return self.created_wall + self.latency * QUEUED_FRACTION
        return self.created_wall + self.latency

    def iso_at(self, status: str) -> str:
        """``updated_at`` for ``status`` (``queued`` gives ``created_at``), formatted once."""
        text = self.timestamps.get(status)
        if text is None:
            text = self.timestamps[status] = iso(self.updated_wall(status))
        return text

    @property
    def due(self) -> float:
        """Monotonic time at which the generation becomes terminal."""
        return self.created_mono + self.latency

    @property
    def media_path(self) -> str:
        """Path (with signature) of the single output on the media host."""
        ext = "jpg" if self.output.fmt == "jpeg" else "png"
        return f"/media/generations/{self.id}/0.{ext}?sig={self.sig}"


@dataclasses.dataclass(eq=False)
class StoredFile:
    """An uploaded file."""

    id: str
    owner: str
    kind: str
    name: str
    mime_type: str
    data: bytes
    created_wall: float
    duration_token: str | None
    sig: str

    @property
    def media_path(self) -> str:
        """Path (with signature) of the bytes on the media host."""
        return f"/media/files/{self.id}/{quote(self.name, safe='')}?sig={self.sig}"
