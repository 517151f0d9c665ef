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
from typing import cast

import httpx

from rivya_provider.api._tls import shared_ssl_context

__all__ = ["pool_users", "shared_async_http_client"]


@dataclasses.dataclass
class _Entry:
    client: httpx.AsyncClient
    users: int = 0


#: One triggerer loop may carry thousands of generations: admit this many requests at once and
#: keep their sockets alive between polls (httpx keeps only 20 by default and would reopen the
#: rest).
MAX_CONNECTIONS = 32
#: A request still unanswered (headers or body) after this many seconds is *slow*: it leaves
#: its admission slot to the next request and goes on in the slow lane, so answers trickling
#: for some generations never starve the polls of others.
SLOW_AFTER = 1.0
#: Connections the slow lane may hold on top of ``MAX_CONNECTIONS``; when it is full, a slow
#: request keeps its admission slot. Every request still ends at its own deadline.
SLOW_LANE = 64
POOL_LIMITS = httpx.Limits(
    max_connections=MAX_CONNECTIONS + SLOW_LANE,
    max_keepalive_connections=MAX_CONNECTIONS,
    keepalive_expiry=60,
)


class _Admission:
    """One request's admission: held from the send until its response is closed, unless the
    request turns slow and moves to the slow lane (then it holds a slow-lane place instead)."""

    def __init__(self, transport: _BoundedTransport) -> None:
        self._transport = transport
        self._slow = False
        self._done = False
        self._timer = asyncio.get_running_loop().call_later(SLOW_AFTER, self._turn_slow)

    def _turn_slow(self) -> None:
        transport = self._transport
        if self._done or transport.slow_room <= 0:
            return
        transport.slow_room -= 1
        self._slow = True
        transport.slots.release()

    def release(self) -> None:
        """Give back whatever this request holds (once)."""
        if self._done:
            return
        self._done = True
        self._timer.cancel()
        if self._slow:
            self._transport.slow_room += 1
        else:
            self._transport.slots.release()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that ends its request's admission when it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, admission: _Admission) -> None:
        self._inner = inner
        self._admission = admission

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._admission.release()


class _BoundedTransport(httpx.AsyncBaseTransport):
    """Admit at most ``limit`` requests into httpcore's pool at once; the rest wait here.

    httpcore rescans its whole queue of waiting requests on every state change, so a thousand
    triggers polling at once would spend their CPU there (measured: throughput collapsed into
    PoolTimeouts). An asyncio semaphore queues them cheaply instead. A request holds its slot
    until its body is closed, or until it turns slow (:data:`SLOW_AFTER`).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int, slow_lane: int) -> None:
        self._inner = inner
        self.slots = asyncio.Semaphore(limit)
        self.slow_room = slow_lane

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.slots.acquire()
        admission = _Admission(self)
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            admission.release()
            raise
        response.stream = _ReleasingStream(cast(httpx.AsyncByteStream, response.stream), admission)
        return response

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
        transport = _BoundedTransport(inner, MAX_CONNECTIONS, SLOW_LANE)
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
