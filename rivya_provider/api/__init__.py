"""Airflow-free client for the Rivya Public API v1: models, errors, sync and async clients.

The public names below are re-exported lazily: ``import rivya_provider.api`` imports neither
httpx nor pydantic; the first attribute access loads the module that defines it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rivya_provider.api._pool import shared_async_http_client
    from rivya_provider.api.client import AsyncRivyaClient, RivyaClient
    from rivya_provider.api.config import ClientConfig
    from rivya_provider.api.errors import (
        AuthenticationError,
        DownloadTooLargeError,
        GenerationFailedError,
        GenerationTimeoutError,
        IdempotencyConflictError,
        InsufficientCreditsError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitedError,
        RivyaError,
        RivyaValidationError,
        TransportError,
        UnavailableError,
        error_from_response,
    )
    from rivya_provider.api.models import (
        CreateResult,
        Credits,
        DownloadResult,
        Generation,
        GenerationErrorInfo,
        GenerationRequest,
        GenerationResult,
        GenerationStatus,
        ModelInfo,
        QwenImageParams,
        ReferenceMediaItem,
        UploadedFile,
    )
    from rivya_provider.api.polling import PollSchedule, next_delay
    from rivya_provider.api.uploads import UploadCheck, check_upload

_MODULES: dict[str, tuple[str, ...]] = {
    "_pool": ("shared_async_http_client",),
    "client": ("AsyncRivyaClient", "RivyaClient"),
    "config": ("ClientConfig",),
    "errors": (
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
    ),
    "models": (
        "CreateResult",
        "Credits",
        "DownloadResult",
        "Generation",
        "GenerationErrorInfo",
        "GenerationRequest",
        "GenerationResult",
        "GenerationStatus",
        "ModelInfo",
        "QwenImageParams",
        "ReferenceMediaItem",
        "UploadedFile",
    ),
    "polling": ("PollSchedule", "next_delay"),
    "uploads": ("UploadCheck", "check_upload"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "AsyncRivyaClient",
    "AuthenticationError",
    "ClientConfig",
    "CreateResult",
    "Credits",
    "DownloadResult",
    "DownloadTooLargeError",
    "Generation",
    "GenerationErrorInfo",
    "GenerationFailedError",
    "GenerationRequest",
    "GenerationResult",
    "GenerationStatus",
    "GenerationTimeoutError",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "ModelInfo",
    "NotFoundError",
    "PermissionDeniedError",
    "PollSchedule",
    "QwenImageParams",
    "RateLimitedError",
    "ReferenceMediaItem",
    "RivyaClient",
    "RivyaError",
    "RivyaValidationError",
    "TransportError",
    "UnavailableError",
    "UploadCheck",
    "UploadedFile",
    "check_upload",
    "error_from_response",
    "next_delay",
    "shared_async_http_client",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
