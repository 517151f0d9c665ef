"""Emulator configuration: API keys, wallet, latency and limits (stdlib only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Literal

DEFAULT_API_KEY = "rvya_sk_emulator"
"""The key the emulator accepts when none is configured."""

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "models:read",
        "generations:create",
        "generations:read",
        "files:create",
        "files:read",
        "credits:read",
        "webhooks:manage",
        "chat:create",
        "chat:read",
    }
)
"""Every scope a Rivya key can carry (RIVYA_API.md)."""

KeyState = Literal["active", "revoked", "expired"]
KEY_STATES: frozenset[str] = frozenset({"active", "revoked", "expired"})


class ConfigError(ValueError):
    """A configuration value is invalid."""


@dataclasses.dataclass(frozen=True)
class KeyConfig:
    """One API key: its scopes, its state and the label used for it in logs and the ledger."""

    scopes: frozenset[str] = ALL_SCOPES
    state: KeyState = "active"
    label: str = ""


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Startup configuration; ``POST /_emulator/reset`` returns to it.

    :param keys: API key value -> :class:`KeyConfig`. Labels default to ``key0``, ``key1``...
    :param credits: starting wallet balance.
    :param latency: seconds from create to a terminal status (20% queued, then processing).
    :param media_base_url: base of result/file URLs; by default derived per request from the
        ``Host`` header with ``127.0.0.1`` and ``localhost`` swapped (see the package docstring).
    :param rate_limit: requests per key allowed per ``rate_limit_window`` seconds (None: off).
    """

    keys: Mapping[str, KeyConfig] = dataclasses.field(
        default_factory=lambda: {DEFAULT_API_KEY: KeyConfig(label="key0")}
    )
    credits: int = 1000
    latency: float = 2.0
    media_base_url: str | None = None
    rate_limit: int | None = None
    rate_limit_window: float = 1.0

    def __post_init__(self) -> None:
        check_non_negative_int("credits", self.credits)
        if self.rate_limit is not None:
            check_non_negative_int("rate_limit", self.rate_limit)
        for name in ("latency", "rate_limit_window"):
            object.__setattr__(self, name, check_non_negative_float(name, getattr(self, name)))
        if not self.keys:
            raise ConfigError("at least one API key is required")
        labelled = {
            value: key if key.label else dataclasses.replace(key, label=f"key{index}")
            for index, (value, key) in enumerate(self.keys.items())
        }
        object.__setattr__(self, "keys", labelled)

    @classmethod
    def with_keys(cls, keys: Iterable[str], **kwargs: Any) -> EmulatorConfig:
        """A config whose keys are all active with every scope."""
        values = list(keys) or [DEFAULT_API_KEY]
        return cls(keys={value: KeyConfig() for value in values}, **kwargs)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EmulatorConfig:
        """Build a config from JSON-like data (same field names as ``POST /_emulator/config``)."""
        kwargs = dict(data)
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config fields: {sorted(unknown)}")
        if "keys" in kwargs:
            kwargs["keys"] = parse_keys(kwargs["keys"])
        return cls(**kwargs)


def parse_keys(data: Any) -> dict[str, KeyConfig]:
    """Parse ``{"<key>": {"scopes": [...], "state": "active", "label": "..."}}``."""
    if not isinstance(data, Mapping):
        raise ConfigError("keys must be an object mapping key values to key settings")
    keys: dict[str, KeyConfig] = {}
    for value, spec in data.items():
        if not isinstance(value, str) or not value:
            raise ConfigError("key values must be non-empty strings")
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise ConfigError("the settings of a key must be an object")
        unknown = set(spec) - {"scopes", "state", "label"}
        if unknown:
            raise ConfigError(f"unknown key settings: {sorted(unknown)}")
        scopes = spec.get("scopes", sorted(ALL_SCOPES))
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ConfigError("scopes must be a list of strings")
        state = spec.get("state", "active")
        if state not in KEY_STATES:
            raise ConfigError(f"state must be one of {sorted(KEY_STATES)}")
        label = spec.get("label", "")
        if not isinstance(label, str):
            raise ConfigError("label must be a string")
        keys[value] = KeyConfig(scopes=frozenset(scopes), state=state, label=label)
    return keys


def check_non_negative_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 0, else raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0")
    return value


def check_non_negative_float(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a number >= 0, else raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{name} must be a number >= 0")
    return float(value)


def media_base_for(base_url: str) -> str:
    """The media base URL for an API base URL: same scheme and port, other host string.

    ``localhost`` becomes ``127.0.0.1``; any other host (``127.0.0.1``, ``[::1]``, a name)
    becomes ``localhost``. Both reach the same loopback server, but a client comparing hosts
    sees a different one, as with a real CDN.
    """
    scheme, _, rest = base_url.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{swap_host(authority)}"


def swap_host(authority: str) -> str:
    """``host[:port]`` with the host swapped as :func:`media_base_for` describes."""
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = authority.partition(":")
    new_host = "127.0.0.1" if host.lower() == "localhost" else "localhost"
    return f"{new_host}:{port}" if port else new_host
