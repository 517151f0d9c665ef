"""One shared ``httpx.AsyncClient`` per running event loop, reference-counted.

Many triggers in one triggerer loop then share one connection pool; a pool is never used
from another loop (httpx connections are bound to the loop that opened them). The client is
closed when its last user leaves; the next user opens a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import weakref
from collections.abc import AsyncIterator

import httpx

from rivya_provider.api._tls import shared_ssl_context

__all__ = ["shared_async_http_client"]


@dataclasses.dataclass
class _Entry:
    client: httpx.AsyncClient
    users: int = 0


#: One triggerer loop may carry thousands of generations: cap the sockets, and keep every one of
#: them alive between polls (httpx keeps only 20 by default and would reopen the rest).
POOL_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=60)

_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def shared_async_http_client(timeout: float = 30.0) -> AsyncIterator[httpx.AsyncClient]:
    """Yield this event loop's shared ``httpx.AsyncClient``; release it on exit.

    ``timeout`` applies when the pool is created; Rivya clients set their own per request.
    """
    loop = asyncio.get_running_loop()
    entry = _POOLS.get(loop)
    if entry is None or entry.client.is_closed:
        entry = _Entry(
            httpx.AsyncClient(timeout=timeout, verify=shared_ssl_context(), limits=POOL_LIMITS)
        )
        _POOLS[loop] = entry
    entry.users += 1
    try:
        yield entry.client
    finally:
        entry.users -= 1
        if entry.users == 0:
            if _POOLS.get(loop) is entry:
                del _POOLS[loop]
            await entry.client.aclose()


def _pool_users() -> int:
    """Users of the current loop's pool (0 when none); for tests and diagnostics."""
    entry = _POOLS.get(asyncio.get_running_loop())
    return entry.users if entry is not None else 0
