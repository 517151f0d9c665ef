"""The exception hierarchy, keyed on Rivya's stable ``error.code`` and then on the HTTP status.

Every exception carries ``code``, ``status_code`` (``None`` when raised locally), ``message``,
``request_id`` and ``retryable`` ("the same call may succeed later"). Messages come from the
server or from local checks and never contain the API key: the client redacts it from server
messages before they get here.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from rivya_provider.api.models import Generation

__all__ = [
    "AuthenticationError",
    "DownloadTooLargeError",
    "GenerationFailedError",
    "GenerationTimeoutError",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RivyaError",
    "RivyaValidationError",
    "TransportError",
    "UnavailableError",
    "error_from_response",
    "parse_retry_after",
]


class RivyaError(Exception):
    """Base of every error raised by :mod:`rivya_provider.api`.

    :param message: human-readable text (never the API key).
    :param code: Rivya's ``error.code``, or a local code such as ``transport_error``.
    :param status_code: HTTP status, ``None`` for errors raised before or without a response.
    :param request_id: the server's ``requestId``; keep it in logs for support.
    :param retryable: whether the same call may succeed later; defaults per class.
    :param retry_after: seconds the server asked to wait (``Retry-After``), if it said so.
    """

    default_code: ClassVar[str] = "error"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status_code = status_code
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        details = [f"HTTP {self.status_code}"] if self.status_code is not None else []
        if self.request_id:
            details.append(f"request id {self.request_id}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{self.code}: {self.message}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status_code={self.status_code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class AuthenticationError(RivyaError):
    """The API key is missing, invalid, revoked or expired (HTTP 401)."""

    default_code = "api_key_invalid"


class PermissionDeniedError(RivyaError):
    """The key lacks the scope this endpoint needs (``api_scope_denied``, HTTP 403)."""

    default_code = "api_scope_denied"


class RivyaValidationError(RivyaError):
    """The request is invalid: refused locally, or by the server (``validation_failed``).

    :param field: the offending field (``prompt``, ``params.image_size``, ``file``...), if known.
    """

    default_code = "validation_failed"

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class InsufficientCreditsError(RivyaError):
    """The wallet cannot cover the reservation (``insufficient_credits``)."""

    default_code = "insufficient_credits"


class IdempotencyConflictError(RivyaError):
    """The ``Idempotency-Key`` was already used with a different body (HTTP 409)."""

    default_code = "idempotency_conflict"


class RateLimitedError(RivyaError):
    """Too many requests (``rate_limited``, HTTP 429); ``retry_after`` says how long to wait."""

    default_code = "rate_limited"
    default_retryable = True


class NotFoundError(RivyaError):
    """No such generation or file for this account (``not_found``, HTTP 404)."""

    default_code = "not_found"


class UnavailableError(RivyaError):
    """The API is switched off (``public_api_disabled``) or failing (5xx); try again later."""

    default_code = "unavailable"
    default_retryable = True


class TransportError(RivyaError):
    """No usable HTTP response: connection failure, timeout, broken stream."""

    default_code = "transport_error"
    default_retryable = True


class DownloadTooLargeError(RivyaError):
    """A download exceeded its ``max_bytes`` limit and was aborted."""

    default_code = "download_too_large"


class GenerationFailedError(RivyaError):
    """The generation ended in ``failed``; ``generation`` holds it (credits were released)."""

    default_code = "generation_failed"

    def __init__(self, generation: Generation) -> None:
        info = generation.error
        code = info.code if info is not None and info.code else self.default_code
        detail = info.message if info is not None and info.message else "no message"
        super().__init__(f"generation {generation.id} failed: {detail}", code=code)
        self.generation = generation


class GenerationTimeoutError(RivyaError):
    """The deadline passed before the generation reached a terminal status."""

    default_code = "generation_timeout"

    def __init__(self, generation_id: str, last_status: str | None = None) -> None:
        seen = f"last status {last_status}" if last_status else "no status seen"
        super().__init__(f"generation {generation_id} not finished at the deadline ({seen})")
        self.generation_id = generation_id
        self.last_status = last_status


_BY_CODE: Mapping[str, type[RivyaError]] = {
    "api_key_missing": AuthenticationError,
    "api_key_invalid": AuthenticationError,
    "api_key_revoked": AuthenticationError,
    "api_key_expired": AuthenticationError,
    "api_scope_denied": PermissionDeniedError,
    "validation_failed": RivyaValidationError,
    "insufficient_credits": InsufficientCreditsError,
    "idempotency_conflict": IdempotencyConflictError,
    "rate_limited": RateLimitedError,
    "not_found": NotFoundError,
    "public_api_disabled": UnavailableError,
}

_BY_STATUS: Mapping[int, type[RivyaError]] = {
    400: RivyaValidationError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: RivyaValidationError,
    429: RateLimitedError,
}


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or HTTP date), or ``None``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        current = time.time() if now is None else now
        seconds = when.timestamp() - current
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_from_response(
    status_code: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
    *,
    now: float | None = None,
) -> RivyaError:
    """Build the exception for an error response.

    The class is chosen by ``error.code`` when known, else by HTTP status (5xx: unavailable and
    retryable; other 4xx: not retryable). The envelope is
    ``{"error": {"code", "message", "requestId"}}``; a missing or malformed one is tolerated.
    """
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    envelope = body.get("error") if isinstance(body, dict) else None
    error: dict[str, Any] = envelope if isinstance(envelope, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    request_id = error.get("requestId") or error.get("request_id") or lowered.get("x-request-id")
    cls = _BY_CODE.get(code or "")
    if cls is None:
        cls = UnavailableError if status_code >= 500 else _BY_STATUS.get(status_code, RivyaError)
    return cls(
        message or f"HTTP {status_code} without an error message",
        code=code or (cls.default_code if cls is not RivyaError else f"http_{status_code}"),
        status_code=status_code,
        request_id=str(request_id) if request_id else None,
        retry_after=parse_retry_after(lowered.get("retry-after"), now=now),
    )
