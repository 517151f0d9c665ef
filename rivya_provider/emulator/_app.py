# Over 400 lines: one ASGI app, one handler per documented endpoint, sharing its error answers.
"""The emulator's ASGI application (Starlette routes behind one plain ASGI middleware)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rivya_provider.emulator._catalogue import MB, MODELS
from rivya_provider.emulator._config import ConfigError, EmulatorConfig, swap_host
from rivya_provider.emulator._controls import FAULT_CODES, FaultRule
from rivya_provider.emulator._extra import check_emulator_extra
from rivya_provider.emulator._records import ApiError, Caller, iso, validation_error
from rivya_provider.emulator._state import ENDPOINT_SCOPES, EmulatorState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_UPLOAD_BYTES = 50 * MB + MB
"""Largest multipart body accepted (the largest file limit plus room for the form fields)."""


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    """Build the emulator ASGI app for ``config`` (default: :class:`EmulatorConfig`).

    :raises EmulatorExtraMissing: Pillow (or another package of the ``emulator`` extra) is
        missing; refusing here means no generation is ever accepted and charged unrendered.
    """
    check_emulator_extra()
    return EmulatorApp(config or EmulatorConfig())


def error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    """Rivya's error envelope."""
    return {"error": {"code": code, "message": message, "requestId": request_id}}


def _request_id(request: Request) -> str:
    state = request.scope.get("state") or {}
    return str(state.get("request_id", "req_unknown"))


def _is_loopback(client: Any) -> bool:
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


class EmulatorApp:
    """ASGI app: request ids, request log, faults, API switch, loopback-only test controls."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.state = EmulatorState(config)
        self._routes = _Routes(self.state)
        self._inner = Starlette(
            routes=self._routes.routes(),
            exception_handlers={
                ApiError: self._api_error,
                ConfigError: self._config_error,
                HTTPException: self._http_error,
                Exception: self._internal_error,
            },
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(10)}"
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())
        path: str = scope["path"]
        method: str = scope["method"]

        if path.startswith("/_emulator/") or path == "/_emulator":
            if not _is_loopback(scope.get("client")):
                await self._send_error(
                    _with_header(send, id_header),
                    request_id,
                    403,
                    "forbidden",
                    "Test controls are loopback-only",
                )
                return
            await self._inner(scope, receive, _with_header(send, id_header))
            return

        headers = scope.get("headers") or []
        client = scope.get("client")
        entry: dict[str, Any] = {
            "seq": 0,
            "time": iso(time.time()),
            "method": method,
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "status": None,
            "headers_present": sorted({name.decode("latin-1").lower() for name, _ in headers}),
            "host": next((v.decode("latin-1") for n, v in headers if n == b"host"), None),
            "key": None,
            "request_id": request_id,
            # The peer's address: one connection belongs to one process (distributed e2e test).
            "client": f"{client[0]}:{client[1]}" if client else None,
            "fault": None,
            "duration_ms": None,
        }
        log = self.state.request_log
        entry["seq"] = (log[-1]["seq"] + 1) if log else 1
        log.append(entry)
        state["log_entry"] = entry
        started = time.monotonic()

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            rule = self.state.take_fault(method, path)
            if rule is not None:
                entry["fault"] = rule.action
                if rule.action == "trickle":
                    await self._inner(scope, receive, _trickling(send_logged, rule.delay or 1.0))
                    return
                if rule.delay:
                    await asyncio.sleep(rule.delay)
                if rule.action == "status":
                    await self._send_fault(send_logged, rule, request_id)
                    return
                if rule.action == "drop":
                    await _drop(receive, send)
                    entry["status"] = None
                    return
                if rule.action == "drop_after":
                    await self._inner(scope, receive, _discard)
                    await _drop(receive, send)
                    entry["status"] = None
                    return
            if self.state.api_disabled and path.startswith("/api/"):
                await self._send_error(
                    send_logged,
                    request_id,
                    503,
                    "public_api_disabled",
                    "The public API is temporarily disabled",
                )
                return
            await self._inner(scope, receive, send_logged)
        finally:
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 3)

    async def _send_fault(self, send: Send, rule: FaultRule, request_id: str) -> None:
        default = "internal_error" if rule.status >= 500 else "error"
        code = rule.code or FAULT_CODES.get(rule.status, default)
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
        message = rule.message or f"Injected fault ({rule.status} {code})"
        await _send_json(send, rule.status, error_body(code, message, request_id), headers)

    @staticmethod
    async def _send_error(
        send: Send, request_id: str, status: int, code: str, message: str
    ) -> None:
        await _send_json(send, status, error_body(code, message, request_id), {})

    @staticmethod
    def _api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        body = error_body(exc.code, exc.message, _request_id(request))
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @staticmethod
    def _config_error(request: Request, exc: Exception) -> Response:
        body = error_body("validation_failed", str(exc), _request_id(request))
        return JSONResponse(body, status_code=400)

    @staticmethod
    def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        body = error_body(code, str(exc.detail), _request_id(request))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @staticmethod
    def _internal_error(request: Request, exc: Exception) -> Response:
        body = error_body("internal_error", f"Emulator error: {exc!r}", _request_id(request))
        return JSONResponse(body, status_code=500)


def _with_header(send: Send, header: tuple[bytes, bytes]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), header]
        await send(message)

    return wrapped


async def _discard(message: Message) -> None:
    return None


def _trickling(send: Send, interval: float) -> Send:
    """``send``, with each response body sent one byte every ``interval`` seconds."""

    async def trickle(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        for index in range(len(body)):
            await asyncio.sleep(interval)
            last = index == len(body) - 1
            await send({**message, "body": body[index : index + 1], "more_body": more or not last})
        if not body:
            await send(message)

    return trickle


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str]) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


async def _drop(receive: Receive, send: Send) -> None:
    """Close the connection without a complete response.

    Under uvicorn the transport is closed before anything is written, and the app waits for
    uvicorn to see the disconnect so that it does not answer 500 instead. Elsewhere a response
    is started with a promised body that never comes.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None and hasattr(transport, "close"):
        transport.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_until_disconnect(receive), timeout=2.0)
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
    )
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionAbortedError("emulated connection drop")


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Routes:
    """Endpoint functions over one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The Starlette routes of the public API, the media host and the test controls."""
        return [
            Route("/api/v1/models", self.models, methods=["GET"]),
            Route("/api/v1/generations", self.create_generation, methods=["POST"]),
            Route("/api/v1/generations/{generation_id}", self.get_generation, methods=["GET"]),
            Route("/api/v1/files", self.upload_file, methods=["POST"]),
            Route("/api/v1/files/{file_id}", self.get_file, methods=["GET"]),
            Route("/api/v1/credits", self.credits, methods=["GET"]),
            Route("/media/generations/{generation_id}/{name}", self.media_output, methods=["GET"]),
            Route("/media/files/{file_id}/{name}", self.media_file, methods=["GET"]),
            Route("/_emulator/health", self.health, methods=["GET"]),
            Route("/_emulator/reset", self.reset, methods=["POST"]),
            Route("/_emulator/ledger", self.ledger, methods=["GET"]),
            Route("/_emulator/requests", self.requests, methods=["GET"]),
            Route("/_emulator/generations", self.generations, methods=["GET"]),
            Route("/_emulator/faults", self.faults, methods=["GET", "POST", "DELETE"]),
            Route("/_emulator/config", self.config, methods=["GET", "POST"]),
        ]

    # -- helpers ---------------------------------------------------------------------------

    def _caller(self, request: Request, endpoint: str) -> Caller:
        caller = self.state.authenticate(
            request.headers.get("authorization"), ENDPOINT_SCOPES[endpoint]
        )
        entry = request.scope["state"].get("log_entry")
        if entry is not None:
            entry["key"] = caller.label
        self.state.check_rate_limit(caller, time.monotonic())
        return caller

    def _media_base(self, request: Request) -> str:
        if self.state.media_base_url:
            return self.state.media_base_url
        host = request.headers.get("host")
        if not host:
            server = request.scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{request.scope.get('scheme', 'http')}://{swap_host(host)}"

    @staticmethod
    async def _json(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise validation_error("the request body must be valid JSON") from None

    # -- public API ------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        """``GET /api/v1/models``: the public catalogue (no key needed)."""
        entries = [model.catalogue_entry() for model in MODELS.values()]
        return JSONResponse({"object": "list", "data": entries})

    async def create_generation(self, request: Request) -> Response:
        """``POST /api/v1/generations``: 202 when created, 200 when replayed."""
        caller = self._caller(request, "create_generation")
        raw = await request.body()
        now = time.monotonic()
        generation, replayed = self.state.create_generation(
            caller, raw, request.headers.get("idempotency-key"), now
        )
        body = self.state.task_json(generation, now, self._media_base(request))
        if replayed:
            return JSONResponse(body, status_code=200, headers={"Idempotent-Replayed": "true"})
        return JSONResponse(body, status_code=202)

    async def get_generation(self, request: Request) -> Response:
        """``GET /api/v1/generations/{id}``."""
        caller = self._caller(request, "get_generation")
        now = time.monotonic()
        generation = self.state.get_generation(caller, request.path_params["generation_id"], now)
        return JSONResponse(self.state.task_json(generation, now, self._media_base(request)))

    async def upload_file(self, request: Request) -> Response:
        """``POST /api/v1/files`` (multipart): 201 with the file object."""
        caller = self._caller(request, "upload_file")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise validation_error("the body must be multipart/form-data")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
            raise validation_error(f"the upload exceeds {MAX_UPLOAD_BYTES} bytes")
        try:
            form = await request.form(max_files=2, max_fields=16)
        except Exception as exc:
            raise validation_error(f"malformed multipart body: {exc}") from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise validation_error("file is required (a multipart file part)")
            if "kind" not in form:
                raise validation_error("kind is required")
            data = await upload.read()
            stored = self.state.store_file(
                caller,
                data=data,
                kind=form.get("kind"),
                filename=upload.filename,
                model=form.get("model"),
                client_request_id=form.get("client_request_id"),
            )
        finally:
            await form.close()
        body = self.state.file_json(stored, self._media_base(request))
        return JSONResponse(body, status_code=201)

    async def get_file(self, request: Request) -> Response:
        """``GET /api/v1/files/{id}``."""
        caller = self._caller(request, "get_file")
        stored = self.state.get_file(caller, request.path_params["file_id"])
        return JSONResponse(self.state.file_json(stored, self._media_base(request)))

    async def credits(self, request: Request) -> Response:
        """``GET /api/v1/credits``."""
        self._caller(request, "credits")
        self.state.settle_due(time.monotonic())
        return JSONResponse({"current_credits": self.state.balance})

    # -- media host (no auth, signed URLs) -------------------------------------------------

    async def media_output(self, request: Request) -> Response:
        """A generation's output image, rendered on first download and cached."""
        generation = self.state.generations.get(request.path_params["generation_id"])
        now = time.monotonic()
        if (
            generation is None
            or generation.status(now) != "succeeded"
            or not generation.media_path.startswith(request.url.path + "?")
        ):
            raise ApiError(404, "not_found", "No such media")
        if request.query_params.get("sig") != generation.sig:
            raise ApiError(403, "forbidden", "Invalid or missing URL signature")
        data = self.state.rendered.get(generation.id)
        if data is None:
            from rivya_provider.emulator._render import average_colour, render_image

            reference = self.state.files.get(generation.reference_file_id or "")
            output = generation.output

            def render() -> bytes:
                frame = average_colour(reference.data) if reference is not None else None
                return render_image(
                    width=output.width,
                    height=output.height,
                    fmt=output.fmt,
                    seed=generation.seed,
                    prompt=generation.prompt,
                    frame_colour=frame,
                )

            data = await run_in_threadpool(render)
            self.state.rendered[generation.id] = data
        media_type = "image/jpeg" if generation.output.fmt == "jpeg" else "image/png"
        return Response(data, media_type=media_type)

    async def media_file(self, request: Request) -> Response:
        """The bytes of an uploaded file."""
        stored = self.state.files.get(request.path_params["file_id"])
        if stored is None:
            raise ApiError(404, "not_found", "No such media")
        if request.query_params.get("sig") != stored.sig:
            raise ApiError(403, "forbidden", "Invalid or missing URL signature")
        return Response(stored.data, media_type=stored.mime_type)

    # -- test controls ---------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """``GET /_emulator/health``."""
        return JSONResponse({"status": "ok"})

    async def reset(self, request: Request) -> Response:
        """``POST /_emulator/reset``: back to the startup configuration, all data cleared."""
        self.state.reset()
        return JSONResponse({"status": "reset"})

    async def ledger(self, request: Request) -> Response:
        """``GET /_emulator/ledger``."""
        return JSONResponse(self.state.ledger_json(time.monotonic()))

    async def requests(self, request: Request) -> Response:
        """``GET /_emulator/requests``: every non-control request received, oldest first."""
        return JSONResponse(list(self.state.request_log))

    async def generations(self, request: Request) -> Response:
        """``GET /_emulator/generations``."""
        return JSONResponse(self.state.generations_json(time.monotonic()))

    async def faults(self, request: Request) -> Response:
        """``GET``/``POST``/``DELETE /_emulator/faults``."""
        if request.method == "POST":
            return JSONResponse({"faults": self.state.add_faults(await self._json(request))})
        if request.method == "DELETE":
            self.state.faults.clear()
        return JSONResponse({"faults": self.state.faults_json()})

    async def config(self, request: Request) -> Response:
        """``GET``/``POST /_emulator/config``."""
        if request.method == "POST":
            return JSONResponse(self.state.configure(await self._json(request)))
        return JSONResponse(self.state.config_json())
