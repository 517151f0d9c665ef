"""Client configuration: base URL, API key, timeouts, retry budget and poll schedule."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from urllib.parse import urlsplit

from rivya_provider.api.errors import RivyaValidationError
from rivya_provider.api.polling import PollSchedule
from rivya_provider.api.ratelimit import DEFAULT_REQUESTS_PER_SECOND

__all__ = ["DEFAULT_BASE_URL", "ClientConfig", "is_loopback_host"]

DEFAULT_BASE_URL = "https://rivya.ai"
#: Attempts of a call made with :meth:`ClientConfig.quick`.
QUICK_ATTEMPTS = 2


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``."""
    bare = host.strip().strip("[]").lower()
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def _refuse(field: str, rule: str) -> RivyaValidationError:
    return RivyaValidationError(f"{field}: {rule}", field=field)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Everything a client needs; the API key is kept out of ``repr``.

    :param api_key: ``rvya_sk_...`` (may be empty for ``list_models`` only).
    :param base_url: API root; HTTPS unless the host is loopback (the local emulator).
    :param timeout: seconds one request may take in all: the wait for a pool slot, connect,
        the answer's headers and its whole body (capped by a generation's deadline).
    :param max_attempts: attempts per call, first one included, for retryable failures.
    :param max_backoff: most seconds one call may spend sleeping between attempts; also caps
        a single ``Retry-After``.
    :param poll: schedule of :meth:`wait_for_generation`.
    :param max_requests_per_second: this process's request budget for the account (shared by
        every client with the same base URL and key; it halves on a 429 and grows back);
        ``None``: no budget.
    """

    api_key: str = dataclasses.field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 30.0
    max_attempts: int = 5
    max_backoff: float = 60.0
    poll: PollSchedule = dataclasses.field(default_factory=PollSchedule)
    max_requests_per_second: float | None = DEFAULT_REQUESTS_PER_SECOND

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_key", _check_api_key(self.api_key))
        object.__setattr__(self, "base_url", _check_base_url(self.base_url))
        if not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout)) or (
            self.timeout <= 0
        ):
            raise _refuse("timeout", f"must be a number of seconds > 0 (got {self.timeout!r})")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise _refuse("max_attempts", f"must be an integer (got {self.max_attempts!r})")
        if self.max_attempts < 1:
            raise _refuse("max_attempts", f"must be at least 1 (got {self.max_attempts})")
        if not isinstance(self.max_backoff, (int, float)) or not 0 <= self.max_backoff < math.inf:
            raise _refuse(
                "max_backoff", f"must be a number of seconds >= 0 (got {self.max_backoff!r})"
            )
        rate = self.max_requests_per_second
        if rate is not None and (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise _refuse(
                "max_requests_per_second",
                f"must be a number of requests per second > 0, or None (got {rate!r})",
            )
        if not isinstance(self.poll, PollSchedule):
            raise _refuse("poll", f"must be a PollSchedule (got {type(self.poll).__name__})")

    def with_poll(self, poll: PollSchedule) -> ClientConfig:
        """A copy with another poll schedule."""
        return dataclasses.replace(self, poll=poll)

    def quick(self) -> ClientConfig:
        """A copy with a short retry budget (2 attempts, 2 s backoff at most), for calls that
        must answer fast and may do without: a connection test, a catalogue lookup."""
        return dataclasses.replace(
            self, max_attempts=min(self.max_attempts, QUICK_ATTEMPTS), max_backoff=2.0
        )


def _check_api_key(value: object) -> str:
    if not isinstance(value, str):
        raise _refuse("api_key", f"must be a string (got {type(value).__name__})")
    key = value.strip()
    # The key goes into a header: refuse what would make httpx fail with the key in its message.
    if any(not 0x21 <= ord(char) <= 0x7E for char in key):
        raise _refuse("api_key", "contains spaces or characters not allowed in an HTTP header")
    return key


def _check_base_url(value: object) -> str:
    # Messages show scheme://host:port only: a URL pasted with credentials must not be echoed.
    if not isinstance(value, str) or not value.strip():
        raise _refuse("base_url", f"must be a URL such as {DEFAULT_BASE_URL}")
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise _refuse("base_url", "is not a valid URL (bad host or port)") from None
    if parts.username is not None or parts.password is not None:
        raise _refuse("base_url", "must not contain credentials; put the API key in api_key")
    shown = f"{parts.scheme}://{host or ''}{f':{port}' if port is not None else ''}"
    if parts.scheme not in ("http", "https") or not host:
        raise _refuse("base_url", f"must be an http(s) URL with a host (got {shown})")
    if parts.query or parts.fragment:
        raise _refuse("base_url", f"must not have a query or fragment ({shown})")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise _refuse(
            "base_url",
            "plain http is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost); "
            f"use https (got {shown})",
        )
    return url
