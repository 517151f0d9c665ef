"""The sync and async Rivya clients: thin drivers of the shared sans-IO core.

Each method body is one line handing an operation of :class:`~rivya_provider.api._core.ClientCore`
to ``_run``, which performs its effects: blocking calls in :class:`RivyaClient`, ``await`` in
:class:`AsyncRivyaClient`. Both are context managers; an ``http_client`` passed in is used
as-is and never closed by the Rivya client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from rivya_provider.api._core import ClientCore
from rivya_provider.api._effects import (
    BinaryWriter,
    Effect,
    Operation,
    ReadChunk,
    Send,
    Session,
    Sleep,
)
from rivya_provider.api._tls import shared_ssl_context
from rivya_provider.api.catalogue import ModelInfo
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.idempotency import Submission
from rivya_provider.api.models import (
    CreateResult,
    Credits,
    DownloadResult,
    Generation,
    GenerationRequest,
    UploadedFile,
)
from rivya_provider.api.polling import PollSchedule
from rivya_provider.api.uploads import UploadSource

__all__ = ["AsyncRivyaClient", "BinaryWriter", "RivyaClient"]

T = TypeVar("T")


class RivyaClient:
    """Blocking client of the Rivya Public API v1.

    :param config: base URL, key, timeouts, retry budget, poll schedule.
    :param http_client: an ``httpx.Client`` to send with (not closed here); default: own one.
    :param sleep: how to sleep between attempts and polls (tests inject a fake).
    :param clock: epoch-seconds clock for deadlines and ``Retry-After`` dates.
    """

    def __init__(
        self,
        config: ClientConfig,
        http_client: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self._core = ClientCore(config, clock=clock or time.time)
        self._owns_http = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else httpx.Client(timeout=config.timeout, verify=shared_ssl_context())
        )
        self._sleep = sleep or time.sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r})"

    def __enter__(self) -> RivyaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            self._http.close()

    def _run(self, operation: Operation[T]) -> T:
        session = Session(operation)
        try:
            for effect in session:
                try:
                    session.reply(self._perform(effect))
                except Exception as exc:
                    session.fail(exc)
            return session.result
        finally:
            for response in session.close():
                response.close()

    def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            if effect.budget is not None:
                _cap_timeouts(effect.request, effect.budget)
            return self._http.send(
                effect.request, stream=effect.stream, follow_redirects=effect.follow_redirects
            )
        if isinstance(effect, Sleep):
            self._sleep(effect.seconds)
            return None
        if isinstance(effect, ReadChunk):
            if effect.chunks is None:
                effect.chunks = effect.response.iter_raw()
            return next(effect.chunks, b"")
        effect.response.close()
        return None

    def list_models(self) -> list[ModelInfo]:
        """The public model catalogue."""
        return self._run(self._core.list_models())

    def create_generation(
        self, request: GenerationRequest | Mapping[str, Any], idempotency_key: str
    ) -> CreateResult:
        """Submit a generation; retried safely under the same ``Idempotency-Key``."""
        return self._run(self._core.create_generation(request, idempotency_key))

    def submit_generation(
        self,
        request: GenerationRequest | Mapping[str, Any],
        base_key: str,
        *,
        previous: Mapping[str, Any] | None = None,
    ) -> Submission:
        """Pay for this work at most once: create under ``base_key``'s series, or reattach.

        A replayed generation that had failed is followed by a fresh one under the next key
        (``<base_key>-r1``...). ``previous`` is an earlier :meth:`Submission.record`: a
        generation it names is reattached with one GET unless it failed.
        """
        return self._run(self._core.submit_generation(request, base_key, previous))

    def get_generation(self, generation_id: str) -> Generation:
        """Current state of a generation."""
        return self._run(self._core.get_generation(generation_id))

    def wait_for_generation(
        self,
        generation_id: str,
        deadline: float,
        on_status: Callable[[Generation], None] | None = None,
        *,
        poll: PollSchedule | None = None,
        model: str | None = None,
        created_at: float | None = None,
    ) -> Generation:
        """Poll until ``succeeded`` (returned); raise on ``failed`` or at ``deadline``.

        Checks the schedule would make before the generation is expected done (the running
        median of its model in this process, :data:`.polling.durations`) are skipped.

        :param deadline: absolute, epoch seconds (``time.time()``).
        :param on_status: called once per status change, the first status included.
        :param poll: schedule override (default: the config's); ``first_delay`` is the wait
            before the first check.
        :param model: the generation's model, when known before the first check.
        :param created_at: when it was created (epoch seconds), when known before the first
            check; with ``model``, even the first check waits for the expected completion.
        :raises GenerationFailedError: the generation failed.
        :raises GenerationTimeoutError: the deadline passed first.
        """
        return self._run(
            self._core.wait_for_generation(
                generation_id, deadline, on_status, poll, model=model, created_at=created_at
            )
        )

    def upload_file(
        self,
        source: UploadSource,
        kind: str = "image",
        model: str | None = None,
        name: str | None = None,
        client_request_id: str | None = None,
        *,
        size: int | None = None,
    ) -> UploadedFile:
        """Check locally, then stream a file to ``POST /api/v1/files``.

        Retried only when the source can be re-read (a path or a seekable file object).
        ``size`` helps only for non-seekable streams (otherwise it is measured).
        """
        return self._run(self._core.upload_file(source, kind, model, name, client_request_id, size))

    def get_file(self, file_id: str) -> UploadedFile:
        """Metadata of an uploaded file."""
        return self._run(self._core.get_file(file_id))

    def get_credits(self) -> Credits:
        """The wallet balance."""
        return self._run(self._core.get_credits())

    def download(self, url: str, sink: BinaryWriter, max_bytes: int) -> DownloadResult:
        """Stream ``url`` into ``sink``, at most ``max_bytes``; return size, SHA-256, type.

        The API key is sent only when ``url`` has the base URL's scheme, host and port.
        """
        return self._run(self._core.download(url, sink, max_bytes))


class AsyncRivyaClient:
    """Async client of the Rivya Public API v1; same methods as :class:`RivyaClient`.

    :param http_client: an ``httpx.AsyncClient`` (not closed here), e.g. the shared per-loop
        pool of :func:`rivya_provider.api.pool.shared_async_http_client`; default: own one.
    """

    def __init__(
        self,
        config: ClientConfig,
        http_client: httpx.AsyncClient | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self._core = ClientCore(config, clock=clock or time.time)
        self._owns_http = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else httpx.AsyncClient(timeout=config.timeout, verify=shared_ssl_context())
        )
        self._sleep = sleep or asyncio.sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r})"

    async def __aenter__(self) -> AsyncRivyaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    async def _run(self, operation: Operation[T]) -> T:
        session = Session(operation)
        try:
            for effect in session:
                try:
                    session.reply(await self._perform(effect))
                except Exception as exc:
                    session.fail(exc)
            return session.result
        finally:
            for response in session.close():
                await response.aclose()

    async def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            sending = self._http.send(
                effect.request, stream=effect.stream, follow_redirects=effect.follow_redirects
            )
            return await _within(sending, effect.budget, effect.request)
        if isinstance(effect, Sleep):
            await self._sleep(effect.seconds)
            return None
        if isinstance(effect, ReadChunk):
            if effect.chunks is None:
                effect.chunks = effect.response.aiter_raw()
            reading = _next_chunk(effect.chunks)
            return await _within(reading, effect.budget, effect.response.request)
        await effect.response.aclose()
        return None

    async def list_models(self) -> list[ModelInfo]:
        """The public model catalogue."""
        return await self._run(self._core.list_models())

    async def create_generation(
        self, request: GenerationRequest | Mapping[str, Any], idempotency_key: str
    ) -> CreateResult:
        """Submit a generation; retried safely under the same ``Idempotency-Key``."""
        return await self._run(self._core.create_generation(request, idempotency_key))

    async def submit_generation(
        self,
        request: GenerationRequest | Mapping[str, Any],
        base_key: str,
        *,
        previous: Mapping[str, Any] | None = None,
    ) -> Submission:
        """Async :meth:`RivyaClient.submit_generation`."""
        return await self._run(self._core.submit_generation(request, base_key, previous))

    async def get_generation(self, generation_id: str) -> Generation:
        """Current state of a generation."""
        return await self._run(self._core.get_generation(generation_id))

    async def wait_for_generation(
        self,
        generation_id: str,
        deadline: float,
        on_status: Callable[[Generation], None] | None = None,
        *,
        poll: PollSchedule | None = None,
        model: str | None = None,
        created_at: float | None = None,
    ) -> Generation:
        """Async :meth:`RivyaClient.wait_for_generation`."""
        return await self._run(
            self._core.wait_for_generation(
                generation_id, deadline, on_status, poll, model=model, created_at=created_at
            )
        )

    async def upload_file(
        self,
        source: UploadSource,
        kind: str = "image",
        model: str | None = None,
        name: str | None = None,
        client_request_id: str | None = None,
        *,
        size: int | None = None,
    ) -> UploadedFile:
        """Async :meth:`RivyaClient.upload_file` (file reads stay blocking: local I/O)."""
        return await self._run(
            self._core.upload_file(source, kind, model, name, client_request_id, size)
        )

    async def get_file(self, file_id: str) -> UploadedFile:
        """Metadata of an uploaded file."""
        return await self._run(self._core.get_file(file_id))

    async def get_credits(self) -> Credits:
        """The wallet balance."""
        return await self._run(self._core.get_credits())

    async def download(self, url: str, sink: BinaryWriter, max_bytes: int) -> DownloadResult:
        """Async :meth:`RivyaClient.download`."""
        return await self._run(self._core.download(url, sink, max_bytes))


def _cap_timeouts(request: httpx.Request, budget: float) -> None:
    """Cap each of ``request``'s httpx timeouts (pool, connect, read, write) at ``budget``.

    The blocking client cannot cancel a send, so this bounds each wait; the core checks the
    request's deadline between two reads of the body.
    """
    timeouts = dict(request.extensions.get("timeout") or {})
    for phase in ("connect", "read", "write", "pool"):
        current = timeouts.get(phase)
        timeouts[phase] = budget if current is None else min(current, budget)
    request.extensions["timeout"] = timeouts


async def _next_chunk(chunks: Any) -> bytes:
    return bytes(await anext(chunks, b""))


async def _within(step: Awaitable[T], budget: float | None, request: httpx.Request) -> T:
    """``await step``, cancelled after ``budget`` seconds (pool wait and trickling answers
    included) with an ``httpx.TimeoutException``, which the core treats like any timeout."""
    if budget is None:
        return await step
    try:
        return await asyncio.wait_for(step, budget)
    except asyncio.TimeoutError:
        raise httpx.TimeoutException(
            f"no complete answer within the request's deadline ({budget:.1f} s left)",
            request=request,
        ) from None
