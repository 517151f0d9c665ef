"""MIME type from a file's first bytes (the server checks signatures, not extensions)."""

from __future__ import annotations

__all__ = ["SNIFF_BYTES", "sniff_mime"]

SNIFF_BYTES = 64
"""How many leading bytes :func:`sniff_mime` needs at most."""

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_GIF = (b"GIF87a", b"GIF89a")
_EBML = b"\x1a\x45\xdf\xa3"


def sniff_mime(head: bytes, kind: str | None = None) -> str | None:
    """Return the MIME type the bytes ``head`` start with, or ``None`` if unrecognised.

    ``kind`` (``image``/``video``/``audio``) only settles ambiguous containers: an MP4 file
    uploaded as ``audio`` is ``audio/mp4``. Audio detection is best effort.
    """
    if head.startswith(_PNG):
        return "image/png"
    if head.startswith(_JPEG):
        return "image/jpeg"
    if head.startswith(b"RIFF") and len(head) >= 12:
        form = head[8:12]
        if form == b"WEBP":
            return "image/webp"
        if form == b"WAVE":
            return "audio/wav"
        return None
    if head.startswith(_GIF):
        return "image/gif"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B ", b"M4P ") or kind == "audio":
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(_EBML):
        return "video/webm"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF:
        second = head[1]
        if second & 0xF6 == 0xF0:  # ADTS sync word, layer 0: AAC
            return "audio/aac"
        if second & 0xE0 == 0xE0 and second & 0x06:  # MPEG audio frame sync, layer I-III
            return "audio/mpeg"
    return None
