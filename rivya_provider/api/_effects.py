"""The effects a sans-IO operation yields, and the :class:`Session` a driver steps it with.

An operation is a generator: it yields an effect (send this request, sleep this long, read the
next chunk, close this response) and receives the outcome. :mod:`rivya_provider.api._core`
writes every API operation this way; :mod:`rivya_provider.api.client` drives them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Iterator
from typing import Any, Generic, Protocol, TypeVar, cast

import httpx

__all__ = [
    "BinaryWriter",
    "Close",
    "Effect",
    "Operation",
    "ReadChunk",
    "Send",
    "Session",
    "Sleep",
]

T = TypeVar("T")


@dataclasses.dataclass(eq=False)
class Send:
    """Send ``request``; reply with the ``httpx.Response`` (body unread if ``stream``).

    ``budget``: seconds the whole send may take, from the wait for a pool slot to the answer's
    headers; past it the driver fails the effect with an ``httpx.TimeoutException``.
    """

    request: httpx.Request
    stream: bool = False
    follow_redirects: bool = False
    budget: float | None = None


@dataclasses.dataclass(eq=False)
class Sleep:
    """Sleep ``seconds``; reply ``None``."""

    seconds: float


@dataclasses.dataclass(eq=False)
class ReadChunk:
    """Reply with the next raw (still encoded) chunk of a streamed body, ``b""`` at the end.

    ``chunks`` holds the driver's iterator between two reads of the same response; ``budget``
    is the seconds this read may take (the rest of the request's deadline), as for :class:`Send`.
    """

    response: httpx.Response
    chunks: Any = None
    budget: float | None = None


@dataclasses.dataclass(eq=False)
class Close:
    """Close a streamed response; reply ``None``."""

    response: httpx.Response


Effect = Send | Sleep | ReadChunk | Close
Operation = Generator[Effect, Any, T]


class Session(Generic[T]):
    """Steps one operation for a driver.

    A driver iterates the session to get effects, performs each and calls :meth:`reply` with
    the outcome or :meth:`fail` with the exception; when iteration stops, :attr:`result` holds
    the return value. Exceptions raised by the operation come out of the iteration. Whatever
    happens, the driver calls :meth:`close` and closes the streamed responses it returns.
    """

    def __init__(self, operation: Operation[T]) -> None:
        self._operation = operation
        self._last: Effect | None = None
        self._reply: Any = None
        self._failure: Exception | None = None
        self._result: list[T] = []
        self._open: list[httpx.Response] = []

    def __iter__(self) -> Iterator[Effect]:
        return self

    def __next__(self) -> Effect:
        failure, self._failure = self._failure, None
        reply, self._reply = self._reply, None
        try:
            if failure is not None:
                effect = self._operation.throw(failure)
            else:
                effect = self._operation.send(reply)
        except StopIteration as stop:
            self._result = [cast(T, stop.value)]
            raise StopIteration from None
        self._last = effect
        return effect

    def reply(self, value: Any) -> None:
        """Hand the outcome of the current effect back to the operation."""
        if isinstance(self._last, Send) and self._last.stream:
            self._open.append(value)
        self._reply = value

    def fail(self, exc: Exception) -> None:
        """Throw the exception the current effect raised into the operation."""
        self._failure = exc

    @property
    def result(self) -> T:
        """The operation's return value (after iteration stopped)."""
        if not self._result:
            raise RuntimeError("the operation has not returned")
        return self._result[0]

    def close(self) -> list[httpx.Response]:
        """Finish the operation; return streamed responses still open (the driver closes them)."""
        self._operation.close()
        leftovers = [response for response in self._open if not response.is_closed]
        self._open = []
        return leftovers


class BinaryWriter(Protocol):
    """A binary sink: an ``open(..., "wb")`` file, ``io.BytesIO``, an fsspec file..."""

    def write(self, data: bytes, /) -> object:
        """Write all of ``data``."""
        ...
