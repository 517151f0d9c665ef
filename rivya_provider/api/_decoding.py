"""Bounded decoding of response bodies: a decompression bomb never becomes a memory bomb.

The clients read raw (still encoded) bytes; :class:`BoundedDecoder` turns them into decoded
pieces of at most :data:`PIECE_BYTES` each, so a body's size limit is enforced on *decoded*
bytes while memory stays bounded by one piece. Only the encodings the client asks for
(:data:`ACCEPT_ENCODING`) are accepted.
"""

from __future__ import annotations

import zlib

__all__ = ["ACCEPT_ENCODING", "PIECE_BYTES", "BoundedDecoder", "UnsupportedEncoding"]

#: Sent as ``Accept-Encoding`` on every request: what :class:`BoundedDecoder` can decode.
ACCEPT_ENCODING = "gzip, deflate"
#: Most decoded bytes produced from one step.
PIECE_BYTES = 64 * 1024


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` the client did not ask for."""


class BoundedDecoder:
    """Decodes one body incrementally; :meth:`take` never returns more than ``PIECE_BYTES``.

    :param content_encoding: the response's ``Content-Encoding`` header (empty: identity).
    """

    def __init__(self, content_encoding: str | None) -> None:
        encoding = (content_encoding or "").strip().lower()
        if encoding in ("", "identity"):
            self._inflater = None
        elif encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflater = zlib.decompressobj()
        else:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")
        self._pending = b""

    def feed(self, raw: bytes) -> None:
        """Add raw bytes read from the wire."""
        self._pending += raw

    def take(self) -> bytes:
        """The next decoded piece from what was fed (``b""`` when more input is needed).

        :raises zlib.error: the body is not valid for its encoding.
        """
        if self._inflater is None:
            piece, self._pending = self._pending[:PIECE_BYTES], self._pending[PIECE_BYTES:]
            return piece
        piece = self._inflater.decompress(self._pending, PIECE_BYTES)
        self._pending = self._inflater.unconsumed_tail
        return piece
