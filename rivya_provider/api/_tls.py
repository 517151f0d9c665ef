"""One TLS context per process, shared by every HTTP client this package creates."""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["shared_ssl_context"]


@functools.lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    """The default verifying context (honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``).

    Loading the CA bundle takes ~50 ms: done once, so opening a client or a pool never stalls
    a busy event loop. An ``SSLContext`` is bound to no thread or loop.
    """
    return httpx.create_ssl_context()
