"""The emulator's test controls: runtime configuration, fault rules, ledger and generation views.

Mixed into :class:`~rivya_provider.emulator._state.EmulatorState`; the API side never calls
these. They serve ``/_emulator/config``, ``/_emulator/faults``, ``/_emulator/ledger`` and
``/_emulator/generations``.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rivya_provider.emulator._config import (
    ConfigError,
    KeyConfig,
    check_non_negative_float,
    check_non_negative_int,
    parse_keys,
)

if TYPE_CHECKING:
    from rivya_provider.emulator._records import Generation

FAULT_CODES: Mapping[int, str] = {
    400: "validation_failed",
    401: "api_key_invalid",
    402: "insufficient_credits",
    403: "api_scope_denied",
    404: "not_found",
    409: "idempotency_conflict",
    429: "rate_limited",
    503: "public_api_disabled",
}
FAULT_ACTIONS = frozenset({"status", "drop", "drop_after", "delay", "trickle"})


@dataclasses.dataclass
class FaultRule:
    """Answer the next ``count`` matching requests with a fault instead of normally."""

    path: str
    match: str = "prefix"
    method: str | None = None
    count: int = 1
    action: str = "status"
    status: int = 503
    code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    delay: float | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule applies to a request."""
        if self.method is not None and self.method != method:
            return False
        return path == self.path if self.match == "exact" else path.startswith(self.path)

    def as_json(self) -> dict[str, Any]:
        """The rule as ``GET /_emulator/faults`` shows it."""
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, data: Any) -> FaultRule:
        """Validate one rule object of ``POST /_emulator/faults``."""
        if not isinstance(data, dict):
            raise ConfigError("a fault rule must be an object")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown fault fields {sorted(unknown)}")
        path = data.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError("path must be a string starting with '/'")
        match = data.get("match", "prefix")
        if match not in ("prefix", "exact"):
            raise ConfigError("match must be 'prefix' or 'exact'")
        method = data.get("method")
        if method is not None and not isinstance(method, str):
            raise ConfigError("method must be a string or null")
        count = check_non_negative_int("count", data.get("count", 1))
        action = data.get("action", "status")
        if action not in FAULT_ACTIONS:
            raise ConfigError(f"action must be one of {sorted(FAULT_ACTIONS)}")
        status = data.get("status")
        if status is None:
            status = 503
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigError("status must be an HTTP status code")
        retry_after = data.get("retry_after")
        if retry_after is not None:
            if isinstance(retry_after, bool) or not isinstance(retry_after, (str, int, float)):
                raise ConfigError("retry_after must be a string or a number")
            retry_after = str(retry_after)
        delay = data.get("delay")
        if delay is not None:
            delay = check_non_negative_float("delay", delay)
        if action == "delay" and delay is None:
            raise ConfigError("action 'delay' needs a delay (seconds)")
        for name in ("code", "message"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ConfigError(f"{name} must be a string")
        return cls(
            path=path,
            match=match,
            method=method.upper() if method else None,
            count=count,
            action=action,
            status=status,
            code=data.get("code"),
            message=data.get("message"),
            retry_after=retry_after,
            delay=delay,
        )


class TestControls:
    """Controls over the state a test drives; the state class provides the attributes below."""

    keys: dict[str, KeyConfig]
    latency: float
    api_disabled: bool
    fail_next: int
    media_base_url: str | None
    rate_limit: int | None
    rate_limit_window: float
    balance: int
    generations: dict[str, Generation]
    ledger: list[dict[str, Any]]
    faults: list[FaultRule]
    request_log: collections.deque[dict[str, Any]]
    _rate_windows: dict[str, list[float]]

    def settle_due(self, now: float) -> None:
        """Settle every generation that is due (the state class does it)."""
        raise NotImplementedError

    def ledger_json(self, now: float) -> dict[str, Any]:
        """Balance and ledger entries, after settling everything that is due."""
        self.settle_due(now)
        return {"balance": self.balance, "entries": list(self.ledger)}

    def configure(self, data: Any) -> dict[str, Any]:
        """Apply ``POST /_emulator/config`` (validated as a whole before anything changes)."""
        if not isinstance(data, dict):
            raise ConfigError("the config body must be a JSON object")
        allowed = {
            "latency",
            "api_disabled",
            "credits",
            "fail_next",
            "keys",
            "rate_limit",
            "rate_limit_window",
            "media_base_url",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"unknown config fields {sorted(unknown)}; allowed {sorted(allowed)}")
        updates: dict[str, Any] = {}
        if "latency" in data:
            updates["latency"] = check_non_negative_float("latency", data["latency"])
        if "api_disabled" in data:
            if not isinstance(data["api_disabled"], bool):
                raise ConfigError("api_disabled must be a boolean")
            updates["api_disabled"] = data["api_disabled"]
        if "credits" in data:
            updates["balance"] = check_non_negative_int("credits", data["credits"])
        if "fail_next" in data:
            updates["fail_next"] = check_non_negative_int("fail_next", data["fail_next"])
        if data.get("rate_limit") is not None:
            updates["rate_limit"] = check_non_negative_int("rate_limit", data["rate_limit"])
        elif "rate_limit" in data:
            updates["rate_limit"] = None
        if "rate_limit_window" in data:
            updates["rate_limit_window"] = check_non_negative_float(
                "rate_limit_window", data["rate_limit_window"]
            )
        if "media_base_url" in data:
            url = data["media_base_url"]
            if url is not None and (not isinstance(url, str) or "://" not in url):
                raise ConfigError("media_base_url must be an absolute URL or null")
            updates["media_base_url"] = url.rstrip("/") if url else None
        keys = dict(self.keys)
        if "keys" in data:
            for value, key in parse_keys(data["keys"]).items():
                label = key.label or (keys[value].label if value in keys else f"key{len(keys)}")
                keys[value] = dataclasses.replace(key, label=label)
        for name, value in updates.items():
            setattr(self, name, value)
        self.keys = keys
        if "rate_limit" in updates or "rate_limit_window" in updates:
            self._rate_windows.clear()
        return self.config_json()

    def config_json(self) -> dict[str, Any]:
        """The runtime configuration (keys by label, never by value)."""
        return {
            "latency": self.latency,
            "api_disabled": self.api_disabled,
            "credits": self.balance,
            "fail_next": self.fail_next,
            "rate_limit": self.rate_limit,
            "rate_limit_window": self.rate_limit_window,
            "media_base_url": self.media_base_url,
            "keys": [
                {"label": key.label, "state": key.state, "scopes": sorted(key.scopes)}
                for key in self.keys.values()
            ],
        }

    def add_faults(self, data: Any) -> list[dict[str, Any]]:
        """Add one rule, a list of rules or ``{"rules": [...]}``; returns the active rules."""
        if isinstance(data, dict) and "rules" in data:
            data = data["rules"]
        items = data if isinstance(data, list) else [data]
        rules = [FaultRule.parse(item) for item in items]
        self.faults.extend(rule for rule in rules if rule.count > 0)
        return self.faults_json()

    def faults_json(self) -> list[dict[str, Any]]:
        """Active fault rules with their remaining counts."""
        return [rule.as_json() for rule in self.faults]

    def take_fault(self, method: str, path: str) -> FaultRule | None:
        """Consume one use of the first rule matching a request."""
        for rule in self.faults:
            if rule.matches(method, path):
                rule.count -= 1
                if rule.count <= 0:
                    self.faults.remove(rule)
                return rule
        return None

    def generations_json(self, now: float) -> list[dict[str, Any]]:
        """Every generation with what it was created from (for assertions in tests)."""
        self.settle_due(now)
        return [
            {
                "id": g.id,
                "status": g.status(now),
                "model": g.model.id,
                "prompt": g.prompt,
                "params": g.params,
                "client_request_id": g.client_request_id,
                "idempotency_key": g.idempotency_key,
                "key": g.owner_label,
                "reserved_credits": g.reserved,
                "created_at": g.iso_at("queued"),
            }
            for g in self.generations.values()
        ]
