"""Local Rivya Public API v1 emulator (Airflow-free; never imports ``rivya_provider.api``).

Written from RIVYA_API.md, the documentation's side of the contract. Run it with
``python -m rivya_provider.emulator [--host H] [--port P|0] [--api-key K]... [--credits N]
[--latency S]`` (first output line: ``Rivya emulator listening on <base URL> (API key: <key>)``),
or build the ASGI app in-process with :func:`create_app`. Importing this package is cheap: the
app is imported on first use of :func:`create_app`.

Choices where the documentation is silent ([assumed] in RIVYA_API.md):

* Create answers **202** with the task object; an idempotent replay answers **200** with
  ``Idempotent-Replayed: true``. Replay: same key + same ``Idempotency-Key`` + same JSON body
  (key order and whitespace ignored) within 24 h returns the original task and charges nothing;
  another body is 409 ``idempotency_conflict``. Idempotency keys are per API key.
* Lifecycle from timestamps (nothing runs in the background): ``queued`` for the first 20% of
  the latency, ``processing`` until the latency has elapsed, then ``succeeded`` or ``failed``.
  The latency is the one configured when the generation was created. A prompt containing
  ``[[fail]]`` fails, and so do the next N creations after ``POST /_emulator/config
  {"fail_next": N}``; a failure has ``error={"code": "generation_failed", ...}``,
  ``final_credits`` 0, and its reservation is refunded.
* Credits: create reserves the model's credits (ledger ``reserve``; the balance drops); success
  adds a ``charge`` entry (balance unchanged, final = reserved); failure adds a ``refund``
  (balance restored). Settlement happens once, when the terminal status is first observed or
  before any balance/ledger read. The balance never goes negative: too few credits is 402
  ``insufficient_credits``.
* Errors use ``{"error": {"code", "message", "requestId"}}``; every response carries
  ``X-Request-Id``. Auth: no ``Authorization: Bearer`` → ``api_key_missing``; unknown key →
  ``api_key_invalid``; revoked/expired keys → ``api_key_revoked``/``api_key_expired`` (401);
  a missing scope → 403 ``api_scope_denied`` (create ``generations:create``, poll
  ``generations:read``, upload ``files:create``, file metadata ``files:read``, credits
  ``credits:read``). Another key's task or file is 404 ``not_found``. With a rate limit
  configured, 429 ``rate_limited`` with ``Retry-After`` (whole seconds).
* Validation (400 ``validation_failed``, nothing reserved): JSON object body with only
  ``model``, ``prompt``, ``params``, ``client_request_id`` (<= 128 characters); a top-level
  ``files`` is rejected; unknown model; qwen-image prompt required and <= 5000 characters;
  ``params`` limited to ``image_size``/``output_format``/``referenceMediaItems`` with the
  documented enums; at most one reference item, ``url`` (http/s) and ``kind`` ``image``
  required. ``GET /api/v1/models`` answers ``{"models": [...]}`` and needs no key.
* Outputs: one image per task, rendered with Pillow on first download and cached; PNG or JPEG
  per ``output_format`` with the pixel size of ``image_size`` (square 512x512, square_hd
  1024x1024, portrait_4_3 768x1024, portrait_16_9 576x1024, landscape_4_3 1024x768,
  landscape_16_9 1024x576); identical bytes for identical ``model``/``prompt``/``params``.
  **Reference rule:** when the reference URL is an emulator file URL, the output's outer frame
  (``min(width, height) // 8`` pixels on every side, so pixel (0, 0) too) is exactly the
  reference's average colour: the mean of each RGB channel over all its pixels (alpha
  dropped), rounded half up (exact in PNG, within JPEG error in JPEG). Other reference URLs are
  not fetched.
* Media host: result and file URLs carry a ``sig`` query parameter, need no key, and use
  another host string than the API request did (``127.0.0.1`` <-> ``localhost``, any other host
  -> ``localhost``; same port), unless ``media_base_url`` is configured. The request log shows
  whether an ``authorization`` header reached a media URL.
* Files (201): multipart ``file``, ``kind``, optional ``model`` and ``client_request_id``; MIME
  detected from the bytes only; limits image 10 MB, video 50 MB, audio 10 MB where
  1 MB = :data:`~rivya_provider.emulator._catalogue.MB` = 1024 * 1024 bytes; response
  ``{"id", "url", "kind", "name", "mime_type", "size_bytes", "duration_token", "created_at"}``
  (snake_case; ``duration_token`` set for audio/video only).

Test controls (loopback clients only, otherwise 403): ``GET /_emulator/health``,
``POST /_emulator/reset``, ``GET /_emulator/ledger``, ``GET /_emulator/requests``,
``GET /_emulator/generations``, ``GET|POST|DELETE /_emulator/faults``,
``GET|POST /_emulator/config``. A fault rule is ``{"path", "match": "prefix"|"exact",
"method", "count", "action": "status"|"drop"|"drop_after"|"delay"|"trickle", "status",
"code", "message", "retry_after", "delay"}``; it applies to API and media paths (never to the
controls), before authentication, and ``drop_after`` processes the request before dropping the
connection. ``trickle`` answers normally but sends the body one byte every ``delay`` seconds
(default 1): an answer that never times out per read. See ``rivya_provider.testing`` for a client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rivya_provider.emulator._config import (
    ALL_SCOPES,
    DEFAULT_API_KEY,
    EmulatorConfig,
    KeyConfig,
    media_base_for,
)

if TYPE_CHECKING:
    from rivya_provider.emulator._app import EmulatorApp, create_app
    from rivya_provider.emulator._server import (
        EmulatorServer,
        base_url_for,
        bind_socket,
        build_server,
    )

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_API_KEY",
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorServer",
    "KeyConfig",
    "base_url_for",
    "bind_socket",
    "build_server",
    "create_app",
    "media_base_for",
]

#: Served by modules that need the emulator extra (Pillow, uvicorn): imported on first use.
_LAZY = {
    "EmulatorApp": "_app",
    "create_app": "_app",
    "EmulatorServer": "_server",
    "base_url_for": "_server",
    "bind_socket": "_server",
    "build_server": "_server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
