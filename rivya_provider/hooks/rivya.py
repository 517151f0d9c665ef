"""RivyaHook: turns an Airflow connection of type ``rivya`` into Rivya API clients.

Connection fields: **password** holds the API key (``rvya_sk_...``); **host** the base URL
(default ``https://rivya.ai``; a scheme-less host means https unless **schema** says
``http``; **port** is appended when the host has none). Extras (all optional): ``timeout``,
``max_attempts``, ``max_backoff``, ``poll_first_delay``, ``poll_interval``, ``poll_factor``,
``poll_max_interval``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from rivya_provider.api.client import AsyncRivyaClient, RivyaClient
from rivya_provider.api.config import DEFAULT_BASE_URL, ClientConfig
from rivya_provider.api.errors import RivyaError, RivyaValidationError
from rivya_provider.api.polling import PollSchedule
from rivya_provider.api.pool import shared_async_http_client
from rivya_provider.compat import aget_connection, get_connection

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = [
    "EXTRA_FIELDS",
    "RivyaHook",
    "base_url_from_connection",
    "config_from_connection",
    "parse_extra",
]


def _whole_number(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


#: Extra key -> (ClientConfig / PollSchedule attribute, converter).
EXTRA_FIELDS: Mapping[str, tuple[str, Callable[[Any], Any]]] = {
    "timeout": ("timeout", float),
    "max_attempts": ("max_attempts", _whole_number),
    "max_backoff": ("max_backoff", float),
    "poll_first_delay": ("first_delay", float),
    "poll_interval": ("interval", float),
    "poll_factor": ("factor", float),
    "poll_max_interval": ("max_interval", float),
    "max_requests_per_second": ("max_requests_per_second", float),
}


def base_url_from_connection(host: str | None, port: int | None, schema: str | None) -> str:
    """Base URL from the connection's host (with or without scheme), port and schema."""
    text = (host or "").strip().rstrip("/")
    if not text:
        return DEFAULT_BASE_URL
    if "://" in text:
        scheme, _, rest = text.partition("://")
    else:
        wanted = (schema or "").strip().lower()
        scheme, rest = (wanted if wanted in ("http", "https") else "https"), text
        if rest.count(":") > 1 and not rest.startswith("["):  # a bare IPv6 address
            rest = f"[{rest}]"
    netloc, slash, path = rest.partition("/")
    if port:
        try:
            has_port = urlsplit(f"{scheme}://{netloc}").port is not None
        except ValueError:
            has_port = True  # leave it to ClientConfig to refuse
        if not has_port:
            netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{slash}{path}"


def _extra_value(extra: Mapping[str, Any], key: str) -> Any:
    for name in (key, f"extra__rivya__{key}"):
        value = extra.get(name)
        if value is not None and value != "":
            return value
    return None


def parse_extra(raw: str | None) -> dict[str, Any]:
    """The connection's extras: a JSON object, or nothing. Malformed JSON is an error."""
    if raw is None or not raw.strip():
        return {}
    try:
        extra = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RivyaValidationError(
            f"extra: is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            field="extra",
        ) from None
    if not isinstance(extra, dict):
        raise RivyaValidationError(
            f"extra: must be a JSON object (got {type(extra).__name__})", field="extra"
        )
    return extra


def config_from_connection(conn: Connection) -> ClientConfig:
    """The client configuration a connection describes; every error names the connection.

    :raises RivyaValidationError: ``connection '<id>': <field>: <rule>`` (malformed extras, a
        setting that is not a finite number in range, a missing API key, a bad base URL).
    """
    try:
        return _config(conn)
    except RivyaValidationError as exc:
        raise RivyaValidationError(
            f"connection {conn.conn_id!r}: {exc.message}", field=exc.field
        ) from None


def _config(conn: Connection) -> ClientConfig:
    extra = parse_extra(conn.extra)
    config_values: dict[str, Any] = {}
    poll_values: dict[str, Any] = {}
    for key, (attribute, convert) in EXTRA_FIELDS.items():
        raw = _extra_value(extra, key)
        if raw is None:
            continue
        try:
            value = convert(raw)
        except (TypeError, ValueError):
            raise RivyaValidationError(
                f"extra.{key}: must be a number (got {raw!r})", field=f"extra.{key}"
            ) from None
        (poll_values if key.startswith("poll_") else config_values)[attribute] = value
    if not (conn.password or "").strip():
        raise RivyaValidationError(
            "password (the API key): is empty; put your rvya_sk_... key in the connection's "
            "password field",
            field="password",
        )
    try:
        return ClientConfig(
            api_key=conn.password or "",
            base_url=base_url_from_connection(conn.host, conn.port, conn.schema),
            poll=PollSchedule(**poll_values),
            **config_values,
        )
    except RivyaValidationError as exc:
        # Name the setting as the user wrote it: poll.interval is extra.poll_interval.
        field = exc.field or ""
        if field.startswith("poll.") or field in config_values:
            key = field.replace("poll.", "poll_")
            rule = exc.message.split(": ", 1)[-1]
            raise RivyaValidationError(f"extra.{key}: {rule}", field=f"extra.{key}") from None
        if field == "base_url":
            raise RivyaValidationError(
                f"host (the base URL){exc.message.removeprefix('base_url')}", field="host"
            ) from None
        raise


class RivyaHook(BaseHook):
    """Interact with the Rivya Public API v1 through an Airflow connection.

    :param rivya_conn_id: connection of type ``rivya`` (API key in the password field).
    """

    conn_name_attr = "rivya_conn_id"
    default_conn_name = "rivya_default"
    conn_type = "rivya"
    hook_name = "Rivya"

    def __init__(self, rivya_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rivya_conn_id = rivya_conn_id

    def get_config(self) -> ClientConfig:
        """Client configuration from the connection (blocking lookup)."""
        return config_from_connection(get_connection(self.rivya_conn_id))

    async def aget_config(self) -> ClientConfig:
        """Client configuration from the connection, looked up without blocking the loop."""
        return config_from_connection(await aget_connection(self.rivya_conn_id))

    def get_conn(self) -> RivyaClient:
        """Same as :meth:`get_client`."""
        return self.get_client()

    def get_client(self) -> RivyaClient:
        """A new sync client (use it as a context manager, or ``close()`` it)."""
        return RivyaClient(self.get_config())

    async def get_async_client(self) -> AsyncRivyaClient:
        """A new async client with its own connection pool (``aclose()`` it when done)."""
        return AsyncRivyaClient(await self.aget_config())

    @contextlib.asynccontextmanager
    async def async_client(
        self, poll: PollSchedule | Mapping[str, Any] | None = None
    ) -> AsyncIterator[AsyncRivyaClient]:
        """An async client on the event loop's shared connection pool, released on exit.

        :param poll: poll schedule override (a ``PollSchedule`` or its ``to_dict()`` form).
        """
        config = await self.aget_config()
        if poll is not None:
            schedule = poll if isinstance(poll, PollSchedule) else PollSchedule.from_dict(poll)
            config = config.with_poll(schedule)
        async with shared_async_http_client(config.timeout) as http:
            yield AsyncRivyaClient(config, http_client=http)

    def test_connection(self) -> tuple[bool, str]:
        """Call ``GET /api/v1/credits``; answer quickly (few retries)."""
        try:
            config = self.get_config()
            with RivyaClient(config.quick()) as client:
                credits = client.get_credits()
        except RivyaError as exc:
            return False, f"{exc.code}: {exc.message}"
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected: {credits.current_credits} credits"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow 3.1 (3.2+ reads the provider info instead)."""
        return {
            "hidden_fields": ["login", "port", "schema"],
            "relabeling": {"password": "API key", "host": "Base URL"},
            "placeholders": {
                "host": DEFAULT_BASE_URL,
                "password": "rvya_sk_...",
                "extra": '{"timeout": 30, "max_attempts": 5, "poll_interval": 5}',
            },
        }
