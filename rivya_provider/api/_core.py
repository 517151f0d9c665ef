# Over 400 lines: every API operation is written once here, sharing the retry and parsing rules.
"""Sans-IO core shared by :class:`RivyaClient` and :class:`AsyncRivyaClient`.

Every API operation is written once, here, as a generator that *yields effects* (send this
request, sleep this long, read the next chunk, close this response) and receives their
results. Request building, response parsing, retry decisions, the polling state machine and
download bookkeeping all live here; the two clients only perform effects, one with blocking
calls and one with ``await``. See :class:`Session` for the stepping protocol.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import zlib
from collections.abc import Callable, Mapping
from typing import IO, Any, TypeVar, cast
from urllib.parse import quote

import httpx
import tenacity
from pydantic import BaseModel, ValidationError

from rivya_provider import __version__
from rivya_provider.api._decoding import ACCEPT_ENCODING, BoundedDecoder, UnsupportedEncoding
from rivya_provider.api._effects import (
    BinaryWriter,
    Close,
    Operation,
    ReadChunk,
    Send,
    Sleep,
)
from rivya_provider.api._retry import retry_policy
from rivya_provider.api.catalogue import ModelInfo
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.errors import (
    DownloadTooLargeError,
    GenerationFailedError,
    GenerationTimeoutError,
    RivyaError,
    RivyaValidationError,
    TransportError,
    error_from_response,
)
from rivya_provider.api.idempotency import Submission, check_idempotency_key, submit_once
from rivya_provider.api.models import (
    MAX_CLIENT_REQUEST_ID,
    CreateResult,
    Credits,
    DownloadResult,
    Generation,
    GenerationRequest,
    UploadedFile,
)
from rivya_provider.api.polling import PollSchedule, durations, learned_delay, next_delay
from rivya_provider.api.ratelimit import shared_budget
from rivya_provider.api.upload_source import PreparedUpload
from rivya_provider.api.uploads import UploadSource

__all__ = ["USER_AGENT", "ClientCore"]

log = logging.getLogger("rivya_provider.api")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=RivyaError)

USER_AGENT = f"airflow-provider-rivya/{__version__}"
ERROR_BODY_LIMIT = 64 * 1024
#: Largest JSON answer the client reads (decoded bytes); any documented answer is far smaller.
JSON_BODY_LIMIT = 1024 * 1024
#: Leading bytes of a download kept for its magic-number check.
HEAD_BYTES = 64
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
#: The last attempt before a caller's deadline still gets this long (seconds) to answer.
MIN_ATTEMPT_SECONDS = 1.5
#: Where a response keeps the end (epoch seconds) of the attempt that sent it.
_END = "rivya_attempt_end"


# -- the core ----------------------------------------------------------------------------------


def _path_segment(field: str, value: str) -> str:
    if not isinstance(value, str) or not value or value in (".", ".."):
        raise RivyaValidationError(f"{field}: must be a non-empty id (got {value!r})", field=field)
    return quote(value, safe="")


def _unwrap(data: Any, keys: tuple[str, ...]) -> Any:
    """Accept ``{"<key>": {...}}`` envelopes around an object that lacks its own fields."""
    if isinstance(data, dict) and "id" not in data and "url" not in data:
        for key in keys:
            inner = data.get(key)
            if isinstance(inner, dict):
                return inner
    return data


class ClientCore:
    """Builds requests, parses responses and decides retries; yields effects for the I/O."""

    def __init__(self, config: ClientConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._timeout = httpx.Timeout(config.timeout).as_dict()
        base = httpx.URL(config.base_url)
        self._origin = (base.scheme, base.host, base.port or _default_port(base.scheme))
        rate = config.max_requests_per_second
        self.budget = shared_budget(config.base_url, config.api_key, rate, clock) if rate else None

    # -- building ------------------------------------------------------------------------------

    def build(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, IO[bytes], str]] | None = None,
    ) -> httpx.Request:
        """A request to the API; the bearer header is added here, per request."""
        all_headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        if auth and self.config.api_key:
            all_headers["Authorization"] = f"Bearer {self.config.api_key}"
        all_headers.update(headers or {})
        return httpx.Request(
            method,
            self.config.base_url + path,
            headers=all_headers,
            content=content,
            data=data,
            files=files,
            extensions={"timeout": self._timeout},
        )

    def is_api_origin(self, url: httpx.URL) -> bool:
        """Same scheme, host and port as the base URL (where the key may be sent)."""
        return (url.scheme, url.host, url.port or _default_port(url.scheme)) == self._origin

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced, should a server ever echo it."""
        key = self.config.api_key
        return text.replace(key, "[redacted]") if key and key in text else text

    def redact_json(self, data: Any) -> Any:
        """Every string of a parsed JSON answer (keys too) with the API key replaced."""
        if not self.config.api_key:
            return data
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, list):
            return [self.redact_json(item) for item in data]
        if isinstance(data, dict):
            return {self.redact(str(k)): self.redact_json(v) for k, v in data.items()}
        return data

    # -- calling -------------------------------------------------------------------------------

    def call(
        self,
        build: Callable[[], httpx.Request],
        *,
        retry: bool = True,
        stream: bool = False,
        follow_redirects: bool = False,
        deadline: float | None = None,
        read: Callable[[httpx.Response], Operation[Any]] | None = None,
    ) -> Operation[Any]:
        """Send a request built afresh per attempt; retry per the policy; return a 2xx.

        With ``read``, the attempt also reads the answer (``read(response)`` is returned): a
        garbled answer then fails the attempt and is retried like a network error.
        """
        retrying = retry_policy(
            max_attempts=self.config.max_attempts if retry else 1,
            max_backoff=self.config.max_backoff,
            deadline=deadline,
            clock=self.clock,
        )
        state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
        retrying.begin()
        request: httpx.Request | None = None
        while True:
            action = retrying.iter(state)
            if isinstance(action, tenacity.DoAttempt):
                request = build()
                yield from self._pace(request, deadline)
                end = self._attempt_end(deadline)
                try:
                    result = yield from self._attempt(request, stream, follow_redirects, end)
                    if read is not None:
                        result = yield from read(result)
                except RivyaError as exc:
                    state.set_exception((type(exc), exc, exc.__traceback__))
                else:
                    state.set_result(result)
            elif isinstance(action, tenacity.DoSleep):
                outcome = state.outcome
                log.warning(
                    "Rivya %s %s failed (%s); attempt %d of %d in %.1f s",
                    request.method if request is not None else "?",
                    request.url.path if request is not None else "?",
                    outcome.exception() if outcome is not None else "?",
                    state.attempt_number + 1,
                    self.config.max_attempts,
                    float(action),
                )
                state.prepare_for_next_attempt()
                yield Sleep(float(action))
            else:
                return action

    def _attempt_end(self, deadline: float | None) -> float:
        """When one attempt must be over, body included: ``timeout`` seconds from now, capped
        by the caller's ``deadline`` (but never under :data:`MIN_ATTEMPT_SECONDS`)."""
        now = self.clock()
        end = now + self.config.timeout
        if deadline is not None:
            end = min(end, max(deadline, now + MIN_ATTEMPT_SECONDS))
        return end

    def _pace(self, request: httpx.Request, deadline: float | None) -> Operation[None]:
        """Wait for this process's request budget for the account (:mod:`.ratelimit`), at most
        until the caller's ``deadline``; requests to other hosts (media) are not paced."""
        if self.budget is None or not self.is_api_origin(request.url):
            return
        slot = self.budget.reserve_slot()
        while slot.wait > 0:
            wait = slot.wait
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - self.clock()))
                if wait <= 0:
                    return
            yield Sleep(wait)
            # A 429 answered meanwhile voids the slot: queue again at the new rate.
            slot = self.budget.recheck(slot)

    def _attempt(
        self, request: httpx.Request, stream: bool, follow_redirects: bool, end: float
    ) -> Operation[httpx.Response]:
        sent_at = self.budget.now() if self.budget is not None else None
        try:
            budget = self._budget(request, end)
            response: httpx.Response = yield Send(request, True, follow_redirects, budget)
        except httpx.RequestError as exc:  # transport errors, and a redirect loop
            raise self._transport_error(exc, request) from self._safe_cause(exc)
        response.extensions[_END] = end
        log.debug("Rivya %s %s -> %s", request.method, request.url.path, response.status_code)
        if response.is_success:
            return response
        body = yield from self._read_error_body(response)
        error = self._error(response, body)
        if response.status_code == 429 and self.budget and self.is_api_origin(request.url):
            # Slow the whole process down; a Retry-After counts up to max_backoff, as for retries.
            retry_after = error.retry_after
            if retry_after is not None:
                retry_after = min(retry_after, self.config.max_backoff)
            self.budget.throttled(retry_after, sent_at)
        raise error

    def _budget(self, request: httpx.Request, end: float) -> float:
        """Seconds left until ``end``; past it, the request timed out as a whole.

        :raises httpx.TimeoutException: no time is left.
        """
        left = end - self.clock()
        if left <= 0:
            raise httpx.TimeoutException(
                f"no complete answer within {self.config.timeout:g} s (the whole request: "
                "pool wait, connect, headers and body)",
                request=request,
            )
        return left

    def _next_piece(self, reader: ReadChunk, decoder: BoundedDecoder) -> Operation[bytes]:
        """The next decoded piece of a streamed body (at most 64 KiB), ``b""`` at its end."""
        while True:
            piece = decoder.take()
            if piece:
                return piece
            end = reader.response.extensions.get(_END)
            if end is not None:
                reader.budget = self._budget(reader.response.request, end)
            raw: bytes = yield reader
            if not raw:
                return b""
            decoder.feed(raw)

    def _read_body(self, response: httpx.Response, limit: int) -> Operation[bytes | None]:
        """The decoded body, or ``None`` when it is over ``limit`` bytes (reading stops there).

        :raises UnsupportedEncoding: a ``Content-Encoding`` the client did not ask for.
        :raises zlib.error: a body that does not decode.
        """
        decoder = BoundedDecoder(response.headers.get("content-encoding"))
        reader = ReadChunk(response)
        body = b""
        try:
            while piece := (yield from self._next_piece(reader, decoder)):
                body += piece
                if len(body) > limit:
                    return None
            return body
        finally:
            yield Close(response)

    def _read_error_body(self, response: httpx.Response) -> Operation[bytes]:
        try:
            body = yield from self._read_body(response, ERROR_BODY_LIMIT)
        except (httpx.TransportError, UnsupportedEncoding, zlib.error):
            return b""  # the status code alone still says what went wrong
        return body if body is not None else b""

    def _read_json(self, response: httpx.Response) -> Operation[Any]:
        """The answer's JSON (at most ``JSON_BODY_LIMIT`` decoded bytes), redacted.

        :raises RivyaError: ``invalid_response`` / ``response_too_large``, retried as transient.
        """
        path = response.request.url.path
        try:
            body = yield from self._read_body(response, JSON_BODY_LIMIT)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, response.request) from self._safe_cause(exc)
        except (UnsupportedEncoding, zlib.error) as exc:
            raise self._garbled(response, f"undecodable answer from {path}: {exc}") from None
        if body is None:
            raise RivyaError(
                f"answer from {path} is over {JSON_BODY_LIMIT} bytes; refused",
                code="response_too_large",
                status_code=response.status_code,
                retryable=True,
            )
        try:
            return self.redact_json(json.loads(body))
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise self._garbled(response, f"expected JSON from {path}, got {kind}") from None

    def _garbled(self, response: httpx.Response, message: str) -> RivyaError:
        return RivyaError(
            self.redact(message),
            code="invalid_response",
            status_code=response.status_code,
            retryable=True,
        )

    def call_json(
        self,
        build: Callable[[], httpx.Request],
        parse: Callable[[Any, httpx.Response], T],
        *,
        retry: bool = True,
        deadline: float | None = None,
    ) -> Operation[T]:
        """:meth:`call` whose attempt also reads and parses the JSON answer."""

        def read(response: httpx.Response) -> Operation[T]:
            data = yield from self._read_json(response)
            return parse(data, response)

        result = yield from self.call(build, retry=retry, deadline=deadline, read=read)
        return cast(T, result)

    def _error(self, response: httpx.Response, body: bytes) -> RivyaError:
        try:
            data = self.redact_json(json.loads(body)) if body else None
        except ValueError:
            data = None
        exc = error_from_response(response.status_code, data, response.headers, now=self.clock())
        if 300 <= response.status_code < 400 and not isinstance(data, dict):
            exc.message = (
                f"unexpected redirect (HTTP {response.status_code}) to "
                f"{response.headers.get('location', '?')}; check the base URL"
            )
        return self.redacted(exc)

    def redacted(self, exc: E) -> E:
        """``exc`` with the API key removed from its message and request id."""
        exc.message = self.redact(exc.message)
        exc.args = (exc.message,)
        if exc.request_id:
            exc.request_id = self.redact(exc.request_id)
        return exc

    def _transport_error(self, exc: httpx.RequestError, request: httpx.Request) -> TransportError:
        where = f"{request.method} {request.url.copy_with(query=None, fragment=None)}"
        detail = self.redact(str(exc)) or "no detail"
        return TransportError(
            f"{type(exc).__name__} during {where}: {detail}",
            retryable=isinstance(exc, _RETRYABLE_TRANSPORT),
        )

    def _safe_cause(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain as a cause, unless its text would show the key in a traceback."""
        key = self.config.api_key
        return None if key and key in str(exc) else exc

    def _parse(self, model: type[M], data: Any, response: httpx.Response) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise self._garbled(
                response,
                f"unexpected {model.__name__} from {response.request.url.path}: {problems}",
            ) from None

    # -- operations ----------------------------------------------------------------------------

    def list_models(self) -> Operation[list[ModelInfo]]:
        """``GET /api/v1/models`` (public: sent without the key); the list under ``data``.

        An entry that is not a model (no ``id``, a field of the wrong type) is skipped and logged.
        """
        entries = yield from self.call_json(
            lambda: self.build("GET", "/api/v1/models", auth=False), self._catalogue_entries
        )
        models: list[ModelInfo] = []
        for entry in entries:
            try:
                models.append(ModelInfo.model_validate(entry))
            except ValidationError as exc:
                log.warning("Skipping a catalogue entry that is not a model: %s", exc)
        return models

    def _catalogue_entries(self, data: Any, response: httpx.Response) -> list[Any]:
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise self._garbled(
                response, "unexpected model catalogue from /api/v1/models: no 'data' list"
            )
        return entries

    def _generation(self, data: Any, response: httpx.Response) -> Generation:
        return self._parse(Generation, _unwrap(data, ("generation", "task", "data")), response)

    def _file(self, data: Any, response: httpx.Response) -> UploadedFile:
        return self._parse(UploadedFile, _unwrap(data, ("file", "data")), response)

    def create_generation(
        self, request: GenerationRequest | Mapping[str, Any], idempotency_key: str
    ) -> Operation[CreateResult]:
        """``POST /api/v1/generations`` with the same body and key on every attempt."""
        if not isinstance(request, GenerationRequest):
            request = GenerationRequest.model_validate(dict(request))
        key = check_idempotency_key(idempotency_key)
        body = request.canonical_json()
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}

        def created(data: Any, response: httpx.Response) -> CreateResult:
            replayed = response.headers.get("idempotent-replayed", "").strip().lower() == "true"
            return CreateResult(generation=self._generation(data, response), replayed=replayed)

        # A garbled answer is retried under the same key: the API replays, nothing is paid twice.
        result = yield from self.call_json(
            lambda: self.build("POST", "/api/v1/generations", headers=headers, content=body),
            created,
        )
        generation, replayed = result.generation, result.replayed
        log.debug("Rivya generation %s created (replayed: %s)", generation.id, replayed)
        return CreateResult(generation=generation, replayed=replayed)

    def submit_generation(
        self,
        request: GenerationRequest | Mapping[str, Any],
        base_key: str,
        previous: Mapping[str, Any] | None,
    ) -> Operation[Submission]:
        """Create once per key series, or reattach to ``previous`` (see ``api.idempotency``)."""
        if not isinstance(request, GenerationRequest):
            request = GenerationRequest.model_validate(dict(request))
        return (
            yield from submit_once(
                self.create_generation, self.get_generation, self.clock, request, base_key, previous
            )
        )

    def get_generation(
        self, generation_id: str, *, deadline: float | None = None
    ) -> Operation[Generation]:
        """``GET /api/v1/generations/{id}``."""
        path = f"/api/v1/generations/{_path_segment('generation_id', generation_id)}"
        return (
            yield from self.call_json(
                lambda: self.build("GET", path), self._generation, deadline=deadline
            )
        )

    def wait_for_generation(
        self,
        generation_id: str,
        deadline: float,
        on_status: Callable[[Generation], None] | None = None,
        poll: PollSchedule | None = None,
        *,
        model: str | None = None,
        created_at: float | None = None,
    ) -> Operation[Generation]:
        """Poll until terminal: return it if succeeded, raise if failed or at the deadline.

        Transient errors (retryable ones, after the call's own retries) never end the wait;
        a ``Retry-After`` they carry replaces the next scheduled delay. Scheduled checks
        before the expected completion (``created_at`` + the model's running median, once
        known) are skipped, at most ``max_interval`` at a time (:func:`.learned_delay`).
        """
        if not isinstance(deadline, (int, float)) or not math.isfinite(deadline):
            raise RivyaValidationError(
                f"deadline: must be epoch seconds (got {deadline!r})", field="deadline"
            )
        schedule = poll or self.config.poll
        last_status: str | None = None
        last_error: RivyaError | None = None
        retry_after: float | None = None
        warned: set[str] = set()
        attempt = 0
        while True:
            now = self.clock()
            delay = next_delay(schedule, attempt, retry_after, deadline, now)
            if retry_after is None:
                expected = self._expected_done(model, created_at)
                delay = min(learned_delay(schedule, delay, expected, now), max(0.0, deadline - now))
            attempt += 1
            if delay > 0:
                yield Sleep(delay)
            try:
                generation = yield from self.get_generation(generation_id, deadline=deadline)
            except RivyaError as exc:
                if not exc.retryable:
                    raise
                last_error, retry_after = exc, exc.retry_after
                log.warning(
                    "Rivya generation %s: transient error, still waiting: %s", generation_id, exc
                )
            else:
                last_error, retry_after = None, None
                model = model or generation.model
                if created_at is None:
                    created_at = generation.created_epoch
                if generation.succeeded and generation.result_urls:
                    self._learn_duration(generation)  # failures are no guide to success
                if generation.status != last_status:
                    last_status = generation.status
                    if on_status is not None:
                        on_status(generation)
                if generation.succeeded and generation.result_urls:
                    return generation
                if generation.succeeded:
                    log.warning(
                        "Rivya generation %s says succeeded but lists no result; asking again",
                        generation_id,
                    )
                if generation.failed:
                    raise self.redacted(GenerationFailedError(generation))
                if not generation.is_known_status and generation.status not in warned:
                    warned.add(generation.status)
                    log.warning(
                        "Rivya generation %s has unknown status %r; treating it as running",
                        generation_id,
                        generation.status,
                    )
            if self.clock() >= deadline:
                raise GenerationTimeoutError(generation_id, last_status) from last_error

    def _expected_done(self, model: str | None, created_at: float | None) -> float | None:
        """Epoch seconds when a generation of ``model`` created at ``created_at`` should be
        done, from this process's running median (``None``: not known yet)."""
        if model is None or created_at is None:
            return None
        expected = durations.expected(self.config.base_url, model)
        return None if expected is None else created_at + expected

    def _learn_duration(self, generation: Generation) -> None:
        duration = generation.duration
        if generation.model is not None and duration is not None:
            durations.observe(self.config.base_url, generation.model, duration)

    def upload_file(
        self,
        source: UploadSource,
        kind: str,
        model: str | None,
        name: str | None,
        client_request_id: str | None,
        size: int | None,
    ) -> Operation[UploadedFile]:
        """``POST /api/v1/files`` (multipart, streamed); checked locally first."""
        if client_request_id is not None and len(client_request_id) > MAX_CLIENT_REQUEST_ID:
            raise RivyaValidationError(
                f"client_request_id: must be at most {MAX_CLIENT_REQUEST_ID} characters "
                f"(got {len(client_request_id)})",
                field="client_request_id",
            )
        prepared = PreparedUpload.open(source, kind, model, name=name, size=size)
        try:
            check = prepared.check
            fields = {"kind": kind}
            if model:
                fields["model"] = model
            if client_request_id:
                fields["client_request_id"] = client_request_id

            def build() -> httpx.Request:
                body = cast(IO[bytes], prepared.stream())
                files = {"file": (check.name, body, check.mime_type)}
                return self.build("POST", "/api/v1/files", data=fields, files=files)

            uploaded = yield from self.call_json(build, self._file, retry=prepared.rereadable)
            sent_sha256 = prepared.sent_sha256
        finally:
            prepared.close()
        if uploaded.kind is None:
            uploaded = uploaded.model_copy(update={"kind": kind})
        return uploaded.with_check(check, sent_sha256)

    def get_file(self, file_id: str) -> Operation[UploadedFile]:
        """``GET /api/v1/files/{id}``."""
        path = f"/api/v1/files/{_path_segment('file_id', file_id)}"
        return (yield from self.call_json(lambda: self.build("GET", path), self._file))

    def get_credits(self) -> Operation[Credits]:
        """``GET /api/v1/credits``."""
        return (
            yield from self.call_json(
                lambda: self.build("GET", "/api/v1/credits"),
                lambda data, response: self._parse(Credits, data, response),
            )
        )

    def download(self, url: str, sink: BinaryWriter, max_bytes: int) -> Operation[DownloadResult]:
        """Stream ``url`` into ``sink``; the key goes only to the API's own origin."""
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise RivyaValidationError(
                f"max_bytes: must be a positive integer (got {max_bytes!r})", field="max_bytes"
            )
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise RivyaValidationError(f"url: is not a valid URL ({exc})", field="url") from None
        if target.scheme not in ("http", "https") or not target.host:
            raise RivyaValidationError("url: must be an absolute http(s) URL", field="url")
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
        if self.config.api_key and self.is_api_origin(target):
            headers["Authorization"] = f"Bearer {self.config.api_key}"

        def build() -> httpx.Request:
            timeout = {"timeout": self._timeout}
            return httpx.Request("GET", target, headers=headers, extensions=timeout)

        response = yield from self.call(build, stream=True, follow_redirects=True)
        limit_text = f"the {max_bytes}-byte download limit (max_bytes)"
        declared = response.headers.get("content-length", "")
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        if declared.isdigit() and int(declared) > max_bytes and not encoded:
            yield Close(response)
            raise DownloadTooLargeError(
                f"{target.copy_with(query=None)} is {declared} bytes, over {limit_text}"
            )
        digest = hashlib.sha256()
        size = 0
        head = b""
        reader = ReadChunk(response)
        try:
            decoder = BoundedDecoder(response.headers.get("content-encoding"))
            while chunk := (yield from self._next_piece(reader, decoder)):
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadTooLargeError(
                        f"{target.copy_with(query=None)} exceeded {limit_text} (decoded); aborted"
                    )
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                digest.update(chunk)
                sink.write(chunk)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, response.request) from self._safe_cause(exc)
        except (UnsupportedEncoding, zlib.error) as exc:
            raise TransportError(
                f"undecodable download from {target.copy_with(query=None)}: {exc}", retryable=True
            ) from None
        finally:
            yield Close(response)
        return DownloadResult(
            size_bytes=size,
            sha256=digest.hexdigest(),
            content_type=response.headers.get("content-type"),
            head=head,
        )


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)
