"""MIME type detection from file signatures (magic bytes), never from names or declared types."""

from __future__ import annotations


def sniff_mime(head: bytes, *, kind: str | None = None) -> str | None:
    """Return the MIME type the leading bytes identify, or None if unrecognised.

    ``kind`` only breaks ties the signature cannot (an ISO-BMFF file declared as audio is
    ``audio/mp4``). Audio detection is best effort.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B ", b"M4P ") or kind == "audio":
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync; layer bits 00 mean an AAC ADTS header.
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    return None
