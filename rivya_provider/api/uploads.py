"""What an upload may be (kind, MIME type, size), per Rivya's documented limits; a leaf module.

The documentation's "10 MB" is read as 10 MiB (``10 * 1024 * 1024`` bytes), the same as the
bundled emulator; every limit lives in :data:`KIND_RULES` / :data:`MODEL_UPLOAD_RULES`.
The MIME type is sniffed from the first bytes, never taken from the file name
(``rivya_provider.api.upload_source`` applies these rules to a real file).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Protocol, Union

from rivya_provider.api.errors import RivyaValidationError

__all__ = [
    "KIND_RULES",
    "MB",
    "MODEL_UPLOAD_RULES",
    "BinaryReader",
    "UploadCheck",
    "UploadRule",
    "UploadSource",
    "format_size",
    "rule_for",
]

MB = 1024 * 1024
"""One megabyte as this package counts it: the documented "10 MB" is ``10 * MB`` bytes."""


class BinaryReader(Protocol):
    """A binary file-like object: ``open(..., "rb")``, ``io.BytesIO``, an fsspec file..."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all when negative); ``b""`` at the end."""
        ...


UploadSource = Union[str, "os.PathLike[str]", BinaryReader]
"""A local path, or an open binary file object (seekable ones can be retried)."""


@dataclasses.dataclass(frozen=True)
class UploadRule:
    """What one kind of upload accepts."""

    mime_types: frozenset[str]
    max_bytes: int


KIND_RULES: Mapping[str, UploadRule] = {
    "image": UploadRule(frozenset({"image/jpeg", "image/png", "image/webp"}), 10 * MB),
    "video": UploadRule(frozenset({"video/mp4", "video/quicktime", "video/webm"}), 50 * MB),
    "audio": UploadRule(
        frozenset(
            {"audio/mpeg", "audio/mp4", "audio/wav", "audio/x-wav", "audio/aac", "audio/ogg"}
        ),
        10 * MB,
    ),
}
"""Default limits per ``kind`` (RIVYA_API.md, Files API)."""

MODEL_UPLOAD_RULES: Mapping[str, Mapping[str, UploadRule]] = {
    "qwen-image": {"image": KIND_RULES["image"]},
}
"""Model-specific rules, applied when ``model`` is given: the kinds a model takes, and limits."""


@dataclasses.dataclass(frozen=True)
class UploadCheck:
    """Outcome of :func:`check_upload`: what will be sent.

    ``size_bytes`` is ``None`` only for a non-seekable stream given without ``size``; the limit
    is then enforced while streaming.
    """

    name: str
    size_bytes: int | None
    mime_type: str
    kind: str
    max_bytes: int


def rule_for(kind: str, model: str | None) -> UploadRule:
    """The rule for ``kind`` (and ``model``, if given); refuses unknown or unsupported kinds."""
    if kind not in KIND_RULES:
        raise RivyaValidationError(
            f"kind: must be one of {', '.join(KIND_RULES)} (got {kind!r})", field="kind"
        )
    model_rules = MODEL_UPLOAD_RULES.get(model) if model else None
    if model_rules is None:
        return KIND_RULES[kind]
    if kind not in model_rules:
        accepted = " or ".join(model_rules)
        raise RivyaValidationError(
            f"kind: model {model} accepts {accepted} files only (got {kind!r})", field="kind"
        )
    return model_rules[kind]


def format_size(size: int) -> str:
    """``10485760`` -> ``"10 MiB (10485760 bytes)"``."""
    if size % MB == 0:
        return f"{size // MB} MiB ({size} bytes)"
    return f"{size} bytes"
