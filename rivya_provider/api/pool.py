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

__all__ = ["pool_users", "shared_async_http_client"]


@dataclasses.dataclass
class _Entry:
    client: httpx.AsyncClient
    users: int = 0


#: One triggerer loop may carry thousands of generations: cap the sockets, and keep every one of
#: them alive between polls (httpx keeps only 20 by default and would reopen the rest).
MAX_CONNECTIONS = 32
POOL_LIMITS = httpx.Limits(
    max_connections=MAX_CONNECTIONS,
    max_keepalive_connections=MAX_CONNECTIONS,
    keepalive_expiry=60,
)


class _BoundedTransport(httpx.AsyncBaseTransport):
    """Admit at most ``limit`` requests into httpcore's pool at once; the rest wait here.

    httpcore rescans its whole queue of waiting requests on every state change, so a thousand
    triggers polling at once would spend their CPU there (measured: throughput collapsed into
    PoolTimeouts). An asyncio semaphore queues them cheaply instead.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._slots:
            return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def shared_async_http_client(timeout: float = 30.0) -> AsyncIterator[httpx.AsyncClient]:
    """Yield this event loop's shared ``httpx.AsyncClient``; release it on exit.

    ``timeout`` applies when the pool is created; Rivya clients set their own per request.
    """
    loop = asyncio.get_running_loop()
    entry = _POOLS.get(loop)
    if entry is None or entry.client.is_closed:
        inner = httpx.AsyncHTTPTransport(verify=shared_ssl_context(), limits=POOL_LIMITS)
        transport = _BoundedTransport(inner, MAX_CONNECTIONS)
        entry = _Entry(httpx.AsyncClient(timeout=timeout, transport=transport))
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


def pool_users() -> int:
    """Users of the running loop's shared pool (0 when none): how many waits share it."""
    entry = _POOLS.get(asyncio.get_running_loop())
    return entry.users if entry is not None else 0
