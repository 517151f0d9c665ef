"""An upload source opened, checked and wrapped so httpx streams it without reading it whole."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any

from rivya_provider.api.errors import RivyaValidationError
from rivya_provider.api.mime import SNIFF_BYTES, sniff_mime
from rivya_provider.api.uploads import (
    BinaryReader,
    UploadCheck,
    UploadRule,
    UploadSource,
    format_size,
    rule_for,
)

__all__ = ["check_upload"]

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/wav": "wav",
    "audio/aac": "aac",
    "audio/ogg": "ogg",
}


def _refuse(rule: str) -> RivyaValidationError:
    return RivyaValidationError(f"file: {rule}", field="file")


def _base_name(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if not isinstance(value, (str, os.PathLike)):
        return None
    text = os.fspath(value)
    if not isinstance(text, str):
        return None
    name = PurePosixPath(text.replace("\\", "/")).name
    return name or None


def _read_head(raw: BinaryReader) -> bytes:
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = raw.read(SNIFF_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _is_seekable(raw: Any) -> bool:
    probe = getattr(raw, "seekable", None)
    if callable(probe):
        try:
            return bool(probe())
        except (OSError, ValueError):
            return False
    return callable(getattr(raw, "seek", None)) and callable(getattr(raw, "tell", None))


class PreparedUpload:
    """A checked upload source; :meth:`stream` gives a fresh body stream per attempt."""

    def __init__(
        self,
        raw: BinaryReader,
        check: UploadCheck,
        *,
        start: int | None,
        head: bytes,
        owned: bool,
    ) -> None:
        self.raw = raw
        self.check = check
        self._start = start
        self._head = head
        self._owned = owned
        self._streams = 0
        self.last_stream: UploadStream | None = None

    @classmethod
    def open(
        cls,
        source: UploadSource,
        kind: str,
        model: str | None,
        *,
        name: str | None = None,
        size: int | None = None,
    ) -> PreparedUpload:
        """Open (for a path), measure, sniff and check ``source``; nothing is sent."""
        rule = rule_for(kind, model)
        if isinstance(source, (str, os.PathLike)):
            return cls._open_path(source, kind, model, rule, name)
        obj: object = source
        if isinstance(obj, io.TextIOBase):
            raise _refuse("must be opened in binary mode ('rb'), not text mode")
        if not callable(getattr(source, "read", None)):
            raise _refuse(f"must be a path or a binary file object (got {type(source).__name__})")
        return cls._from_object(source, kind, model, rule, name, size, owned=False)

    @classmethod
    def _open_path(
        cls,
        path: str | os.PathLike[str],
        kind: str,
        model: str | None,
        rule: UploadRule,
        name: str | None,
    ) -> PreparedUpload:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise _refuse(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(f"{os.fspath(path)!r} is not a regular file")
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by PreparedUpload.close()
        except OSError as exc:
            raise _refuse(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from None
        try:
            return cls._from_object(
                handle, kind, model, rule, name or _base_name(path), info.st_size, owned=True
            )
        except BaseException:
            handle.close()
            raise

    @classmethod
    def _from_object(
        cls,
        raw: BinaryReader,
        kind: str,
        model: str | None,
        rule: UploadRule,
        name: str | None,
        size: int | None,
        *,
        owned: bool,
    ) -> PreparedUpload:
        seekable = _is_seekable(raw)
        start: int | None = None
        if seekable:
            seeker: Any = raw
            start = int(seeker.tell())
            end = int(seeker.seek(0, os.SEEK_END))
            seeker.seek(start)
            size = max(0, end - start)
        head = _read_head(raw)
        if seekable:
            seeker.seek(start)
        if size is None and not head:
            size = 0
        if size == 0:
            raise _refuse("is empty")
        if size is not None and size > rule.max_bytes:
            raise _refuse(
                f"is {size} bytes, over the {format_size(rule.max_bytes)} limit for "
                f"{kind} files{f' of model {model}' if model else ''}"
            )
        mime = sniff_mime(head, kind)
        accepted = ", ".join(sorted(rule.mime_types))
        if mime is None:
            raise _refuse(
                f"content is not a recognised {kind} format (accepted: {accepted}); the type is "
                "read from the file's first bytes, not its name"
            )
        if mime not in rule.mime_types:
            raise _refuse(
                f"content is {mime}, not accepted for {kind} uploads"
                f"{f' to model {model}' if model else ''} (accepted: {accepted})"
            )
        chosen = (
            _base_name(name)
            or _base_name(getattr(raw, "name", None))
            or _base_name(getattr(raw, "path", None))
            or f"upload.{_EXTENSIONS.get(mime, 'bin')}"
        )
        check = UploadCheck(
            name=chosen, size_bytes=size, mime_type=mime, kind=kind, max_bytes=rule.max_bytes
        )
        return cls(raw, check, start=start, head=b"" if seekable else head, owned=owned)

    @property
    def rereadable(self) -> bool:
        """Whether the body can be sent again (a path or a seekable object): retries allowed."""
        return self._start is not None

    def stream(self) -> UploadStream:
        """A body stream from the start of the source (once only for a non-seekable source)."""
        if not self.rereadable and self._streams:
            raise RuntimeError("a non-seekable upload source can be streamed only once")
        self._streams += 1
        self.last_stream = UploadStream(
            self.raw,
            start=self._start,
            head=self._head,
            size=self.check.size_bytes,
            limit=self.check.max_bytes,
            kind=self.check.kind,
        )
        return self.last_stream

    @property
    def sent_sha256(self) -> str | None:
        """Hex SHA-256 of the bytes the last stream sent in full (None if none did)."""
        return self.last_stream.sha256 if self.last_stream is not None else None

    def close(self) -> None:
        """Close the file if it was opened here (from a path); restore the position otherwise."""
        if self._owned:
            close = getattr(self.raw, "close", None)
            if callable(close):
                close()
        elif self._start is not None:
            seeker: Any = self.raw
            with contextlib.suppress(OSError, ValueError):
                seeker.seek(self._start)

    def __enter__(self) -> PreparedUpload:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class UploadStream:
    """The only object httpx sees: a read window over the source, with size and limit checks.

    It has no ``fileno``; it reports its length through ``seek``/``tell`` when known, so httpx
    sends a ``Content-Length``, else the body goes chunked.
    """

    def __init__(
        self,
        raw: BinaryReader,
        *,
        start: int | None,
        head: bytes,
        size: int | None,
        limit: int,
        kind: str,
    ) -> None:
        self._raw = raw
        self._start = start
        self._pending = head
        self._size = size
        self._limit = limit
        self._kind = kind
        self._pos = 0
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes hashed, contiguous from the start of the window
        self._ended = False
        if start is not None:
            seeker: Any = raw
            seeker.seek(start)

    def read(self, size: int = -1, /) -> bytes:
        """Read the next bytes of the window, checking the size limit."""
        remaining: int | None = None
        if self._size is not None:
            remaining = self._size - self._pos
            if remaining <= 0:
                return b""
            size = remaining if size < 0 else min(size, remaining)
        chunk = self._read_raw(size)
        if not chunk and remaining:
            raise _refuse(f"ended after {self._pos} bytes while {self._size} were expected")
        if not chunk or (self._size is not None and self._pos + len(chunk) >= self._size):
            self._ended = True
        if self._hashed == self._pos:
            self._digest.update(chunk)
            self._hashed += len(chunk)
        self._pos += len(chunk)
        if self._pos > self._limit:
            raise _refuse(
                f"is over the {format_size(self._limit)} limit for {self._kind} files "
                f"(more than {self._pos - len(chunk)} bytes read)"
            )
        return chunk

    def _read_raw(self, size: int) -> bytes:
        if self._pending:
            if size < 0:
                data, self._pending = self._pending + self._raw.read(), b""
                return data
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return self._raw.read(size)

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the bytes sent, once the whole window was read in order (else None)."""
        complete = self._ended and self._hashed == self._pos
        return self._digest.hexdigest() if complete else None

    def tell(self) -> int:
        """Position inside the window."""
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move inside the window (seekable sources only)."""
        if self._start is None:
            raise io.UnsupportedOperation("this upload stream cannot be rewound")
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._pos + offset
        elif whence == os.SEEK_END and self._size is not None:
            target = self._size + offset
        else:
            raise io.UnsupportedOperation(f"unsupported seek (whence={whence})")
        seeker: Any = self._raw
        seeker.seek(self._start + max(0, target))
        self._pos = max(0, target)
        if self._pos == 0:  # read again from the start: hash again from the start
            self._digest, self._hashed, self._ended = hashlib.sha256(), 0, False
        return self._pos


def check_upload(
    source: UploadSource,
    kind: str = "image",
    model: str | None = None,
    *,
    name: str | None = None,
    size: int | None = None,
) -> UploadCheck:
    """Check a file locally against the kind/model rules; send nothing.

    :param source: a path, or a seekable binary file object (an fsspec/``ObjectStoragePath``
        file works); its position is restored afterwards.
    :param kind: ``image``, ``video`` or ``audio``.
    :param model: apply this model's rules too (e.g. ``qwen-image``: images only).
    :param name: file name to send; defaults to the path's or file object's name.
    :param size: byte size, when the object cannot tell (it is measured when it can).
    :raises RivyaValidationError: naming the rule (wrong kind, MIME type, size, empty file).
    """
    with PreparedUpload.open(source, kind, model, name=name, size=size) as prepared:
        if not prepared.rereadable:
            raise RivyaValidationError(
                "file: check_upload needs a path or a seekable file object (this stream cannot "
                "be rewound); give the stream to upload_file directly",
                field="file",
            )
        return prepared.check
