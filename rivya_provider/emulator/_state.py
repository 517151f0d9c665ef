"""In-memory emulator state: keys, generations, files, credits ledger, faults, request log.

Every method is synchronous and the app runs on one event loop, so each check-and-update (for
example the credits check and the reservation) is atomic with respect to concurrent requests.
Generation status is computed from timestamps on read; nothing runs in the background.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import heapq
import json
import math
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from rivya_provider.emulator._catalogue import (
    FILE_MIME_TYPES,
    FILE_SIZE_LIMITS,
    MAX_CLIENT_REQUEST_ID,
    MODELS,
    GenerationRequest,
    ModelSpec,
    OutputSpec,
    ValidationFailed,
    validate_generation_body,
)
from rivya_provider.emulator._config import (
    ConfigError,
    EmulatorConfig,
    KeyConfig,
    check_non_negative_float,
    check_non_negative_int,
    parse_keys,
)

FAIL_MARKER = "[[fail]]"
QUEUED_FRACTION = 0.2
IDEMPOTENCY_TTL = 24 * 3600.0
MAX_IDEMPOTENCY_KEY = 255
REQUEST_LOG_LIMIT = 100_000
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
FAULT_ACTIONS = frozenset({"status", "drop", "drop_after", "delay"})
ENDPOINT_SCOPES: Mapping[str, str] = {
    "create_generation": "generations:create",
    "get_generation": "generations:read",
    "upload_file": "files:create",
    "get_file": "files:read",
    "credits": "credits:read",
}


class ApiError(Exception):
    """An error answered with Rivya's envelope ``{"error": {"code", "message", "requestId"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def validation_error(message: str) -> ApiError:
    """A 400 ``validation_failed`` error."""
    return ApiError(400, "validation_failed", message)


_formatted_second: tuple[int, str] = (-1, "")


def iso(timestamp: float) -> str:
    """``2026-05-11T00:00:00.000Z`` (UTC, milliseconds), the format of the documented examples."""
    global _formatted_second
    second, milli = divmod(int(timestamp * 1000), 1000)
    cached = _formatted_second  # one read: safe if several in-process emulators share it
    if cached[0] != second:  # strftime is the costliest step of a status request
        moment = datetime.fromtimestamp(second, tz=timezone.utc)
        cached = _formatted_second = (second, moment.strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{milli:03d}Z"


def new_id(prefix: str) -> str:
    """A random identifier such as ``task_3f...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclasses.dataclass(frozen=True)
class Caller:
    """The authenticated key of a request."""

    key: str
    config: KeyConfig

    @property
    def label(self) -> str:
        """The key's label (logs and ledger never show key values)."""
        return self.config.label


@dataclasses.dataclass(eq=False)
class Generation:
    """A Rivya task ("generation" in this code base)."""

    id: str
    owner: str
    owner_label: str
    model: ModelSpec
    prompt: str
    params: Mapping[str, Any]
    client_request_id: str | None
    idempotency_key: str | None
    output: OutputSpec
    seed: bytes
    created_mono: float
    created_wall: float
    latency: float
    failure: str | None
    reserved: int
    sig: str
    reference_file_id: str | None
    settled: bool = False
    timestamps: dict[str, str] = dataclasses.field(default_factory=dict)

    def status(self, now: float) -> str:
        """The status at monotonic time ``now``."""
        elapsed = now - self.created_mono
        if elapsed >= self.latency:
            return "failed" if self.failure else "succeeded"
        if elapsed >= self.latency * QUEUED_FRACTION:
            return "processing"
        return "queued"

    def updated_wall(self, status: str) -> float:
        """Wall-clock time of the transition into ``status``."""
        if status == "queued":
            return self.created_wall
        if status == "processing":
            return self.created_wall + self.latency * QUEUED_FRACTION
        return self.created_wall + self.latency

    def iso_at(self, status: str) -> str:
        """``updated_at`` for ``status`` (``queued`` gives ``created_at``), formatted once."""
        text = self.timestamps.get(status)
        if text is None:
            text = self.timestamps[status] = iso(self.updated_wall(status))
        return text

    @property
    def due(self) -> float:
        """Monotonic time at which the generation becomes terminal."""
        return self.created_mono + self.latency

    @property
    def media_path(self) -> str:
        """Path (with signature) of the single output on the media host."""
        ext = "jpg" if self.output.fmt == "jpeg" else "png"
        return f"/media/generations/{self.id}/0.{ext}?sig={self.sig}"


@dataclasses.dataclass(eq=False)
class StoredFile:
    """An uploaded file."""

    id: str
    owner: str
    kind: str
    name: str
    mime_type: str
    data: bytes
    created_wall: float
    duration_token: str | None
    sig: str

    @property
    def media_path(self) -> str:
        """Path (with signature) of the bytes on the media host."""
        return f"/media/files/{self.id}/{quote(self.name, safe='')}?sig={self.sig}"


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


def body_hash(body: Any) -> str:
    """Hash of a JSON body, independent of key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class EmulatorState:
    """All mutable state of one emulator instance."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.startup = config
        self.reset()

    def reset(self) -> None:
        """Back to the startup configuration, with no generations, files, ledger or log."""
        config = self.startup
        self.keys: dict[str, KeyConfig] = dict(config.keys)
        self.latency = config.latency
        self.api_disabled = False
        self.fail_next = 0
        self.media_base_url = config.media_base_url
        self.rate_limit = config.rate_limit
        self.rate_limit_window = config.rate_limit_window
        self.balance = config.credits
        self.generations: dict[str, Generation] = {}
        self.files: dict[str, StoredFile] = {}
        self.ledger: list[dict[str, Any]] = []
        self.idempotency: dict[tuple[str, str], tuple[str, str, float]] = {}
        self.faults: list[FaultRule] = []
        self.request_log: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=REQUEST_LOG_LIMIT
        )
        self.rendered: dict[str, bytes] = {}
        self._due: list[tuple[float, int, str]] = []
        self._seq = 0
        self._rate_windows: dict[str, list[float]] = {}

    # -- keys and limits -------------------------------------------------------------------

    def authenticate(self, authorization: str | None, scope: str) -> Caller:
        """Resolve the bearer key of a request and check that it holds ``scope``."""
        if not authorization:
            raise ApiError(401, "api_key_missing", "Authorization: Bearer <key> is required")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "api_key_missing", "Authorization: Bearer <key> is required")
        config = self.keys.get(token)
        if config is None:
            raise ApiError(401, "api_key_invalid", "The API key is not valid")
        if config.state == "revoked":
            raise ApiError(401, "api_key_revoked", "The API key has been revoked")
        if config.state == "expired":
            raise ApiError(401, "api_key_expired", "The API key has expired")
        if scope not in config.scopes:
            raise ApiError(403, "api_scope_denied", f"The API key lacks the scope {scope}")
        return Caller(token, config)

    def check_rate_limit(self, caller: Caller, now: float) -> None:
        """Count a request against the key's window; raise ``rate_limited`` when over."""
        if self.rate_limit is None:
            return
        window = self._rate_windows.get(caller.key)
        if window is None or now >= window[0] + self.rate_limit_window:
            window = self._rate_windows[caller.key] = [now, 0.0]
        if window[1] >= self.rate_limit:
            retry = max(1, math.ceil(window[0] + self.rate_limit_window - now))
            raise ApiError(
                429, "rate_limited", "Too many requests", headers={"Retry-After": str(retry)}
            )
        window[1] += 1

    # -- generations -----------------------------------------------------------------------

    def create_generation(
        self, caller: Caller, raw_body: bytes, idempotency_key: str | None, now: float
    ) -> tuple[Generation, bool]:
        """Validate, reserve credits and store a generation; returns it and whether replayed."""
        try:
            body = json.loads(raw_body)
        except ValueError:
            raise validation_error("the request body must be valid JSON") from None
        digest = body_hash(body)
        if idempotency_key is not None:
            if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
                raise validation_error(
                    f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
                )
            seen = self.idempotency.get((caller.key, idempotency_key))
            if seen is not None and now - seen[2] < IDEMPOTENCY_TTL:
                if seen[0] != digest:
                    raise ApiError(
                        409,
                        "idempotency_conflict",
                        "This Idempotency-Key was already used with a different body",
                    )
                original = self.generations.get(seen[1])
                if original is not None:
                    self.settle(original, now)
                    return original, True
        try:
            request = validate_generation_body(body)
        except ValidationFailed as exc:
            raise validation_error(str(exc)) from None
        reference_file_id = self._reference_file(request)
        credits = request.model.credits
        if self.balance < credits:
            raise ApiError(
                402,
                "insufficient_credits",
                f"{request.model.id} needs {credits} credits; the wallet holds {self.balance}",
            )
        failure = None
        if FAIL_MARKER in request.prompt:
            failure = f"The generation failed (emulated: the prompt contains {FAIL_MARKER})"
        elif self.fail_next > 0:
            self.fail_next -= 1
            failure = "The generation failed (emulated: fail_next)"
        seed_source: dict[str, Any] = {
            "model": request.model.id,
            "prompt": request.prompt,
            "params": request.params,
        }
        generation = Generation(
            id=new_id("task"),
            owner=caller.key,
            owner_label=caller.label,
            model=request.model,
            prompt=request.prompt,
            params=request.params,
            client_request_id=request.client_request_id,
            idempotency_key=idempotency_key,
            output=request.output,
            seed=bytes.fromhex(body_hash(seed_source)),
            created_mono=now,
            created_wall=time.time(),
            latency=self.latency,
            failure=failure,
            reserved=credits,
            sig=secrets.token_hex(8),
            reference_file_id=reference_file_id,
        )
        self.balance -= credits
        self._record(generation, "reserve", credits)
        self.generations[generation.id] = generation
        if idempotency_key is not None:
            self.idempotency[(caller.key, idempotency_key)] = (digest, generation.id, now)
        self._seq += 1
        heapq.heappush(self._due, (generation.due, self._seq, generation.id))
        self.settle(generation, now)
        return generation, False

    def _reference_file(self, request: GenerationRequest) -> str | None:
        """The emulator file a reference URL points at (checked against the model's rules)."""
        for url in request.output.reference_urls:
            parts = urlsplit(url).path.split("/")
            if len(parts) >= 4 and parts[1:3] == ["media", "files"]:
                stored = self.files.get(parts[3])
                if stored is None:
                    continue
                if stored.kind not in request.model.reference_kinds:
                    raise validation_error(
                        f"reference media of kind {stored.kind} is not accepted by "
                        f"{request.model.id}"
                    )
                return stored.id
        return None

    def get_generation(self, caller: Caller, generation_id: str, now: float) -> Generation:
        """The caller's generation, settled if terminal; ``not_found`` otherwise."""
        generation = self.generations.get(generation_id)
        if generation is None or generation.owner != caller.key:
            raise ApiError(404, "not_found", f"No task {generation_id} for this account")
        self.settle(generation, now)
        return generation

    def settle(self, generation: Generation, now: float) -> None:
        """Charge or refund a terminal generation's reservation, exactly once."""
        if generation.settled or now < generation.due:
            return
        generation.settled = True
        if generation.failure:
            self.balance += generation.reserved
            self._record(generation, "refund", generation.reserved)
        else:
            self._record(generation, "charge", generation.reserved)

    def settle_due(self, now: float) -> None:
        """Settle every generation that has become terminal (before any ledger read)."""
        while self._due and self._due[0][0] <= now:
            _, _, generation_id = heapq.heappop(self._due)
            generation = self.generations.get(generation_id)
            if generation is not None:
                self.settle(generation, now)

    def _record(self, generation: Generation, kind: str, credits: int) -> None:
        self.ledger.append(
            {
                "seq": len(self.ledger) + 1,
                "generation_id": generation.id,
                "type": kind,
                "credits": credits,
                "key": generation.owner_label,
                "model": generation.model.id,
                "balance_after": self.balance,
                "at": iso(time.time()),
            }
        )

    def task_json(self, generation: Generation, now: float, media_base: str) -> dict[str, Any]:
        """The documented task object."""
        status = generation.status(now)
        result = None
        error = None
        if status == "succeeded":
            url = media_base + generation.media_path
            result = {"primary_url": url, "urls": [url]}
        elif status == "failed":
            error = {"code": "generation_failed", "message": generation.failure}
        return {
            "id": generation.id,
            "status": status,
            "model": generation.model.id,
            "reserved_credits": generation.reserved,
            "final_credits": generation.reserved if status == "succeeded" else 0,
            "created_at": generation.iso_at("queued"),
            "updated_at": generation.iso_at(status),
            "result": result,
            "error": error,
        }

    # -- files -----------------------------------------------------------------------------

    def store_file(
        self,
        caller: Caller,
        *,
        data: bytes,
        kind: Any,
        filename: str | None,
        model: Any,
        client_request_id: Any,
    ) -> StoredFile:
        """Validate an upload (kind, detected MIME, size, model rules) and store it."""
        from rivya_provider.emulator._mime import sniff_mime

        if kind not in FILE_SIZE_LIMITS:
            raise validation_error(f"kind must be one of {sorted(FILE_SIZE_LIMITS)}")
        if client_request_id is not None and (
            not isinstance(client_request_id, str) or len(client_request_id) > MAX_CLIENT_REQUEST_ID
        ):
            raise validation_error(
                f"client_request_id must be at most {MAX_CLIENT_REQUEST_ID} characters"
            )
        spec: ModelSpec | None = None
        if model is not None:
            spec = MODELS.get(model) if isinstance(model, str) else None
            if spec is None:
                raise validation_error(f"unknown model {model!r}")
            if kind not in spec.reference_kinds:
                raise validation_error(f"{spec.id} does not accept {kind} files")
        mime = sniff_mime(data[:64], kind=kind)
        if mime is None:
            raise validation_error("the file type could not be recognised from its content")
        if mime not in FILE_MIME_TYPES[kind]:
            raise validation_error(f"the file is {mime}, which is not an accepted {kind} type")
        limit = FILE_SIZE_LIMITS[kind]
        if len(data) > limit:
            raise validation_error(f"{kind} files are limited to {limit} bytes")
        name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1] or "upload"
        stored = StoredFile(
            id=new_id("file"),
            owner=caller.key,
            kind=kind,
            name=name,
            mime_type=mime,
            data=data,
            created_wall=time.time(),
            duration_token=new_id("dur") if kind in ("audio", "video") else None,
            sig=secrets.token_hex(8),
        )
        self.files[stored.id] = stored
        return stored

    def get_file(self, caller: Caller, file_id: str) -> StoredFile:
        """The caller's file, or ``not_found``."""
        stored = self.files.get(file_id)
        if stored is None or stored.owner != caller.key:
            raise ApiError(404, "not_found", f"No file {file_id} for this account")
        return stored

    @staticmethod
    def file_json(stored: StoredFile, media_base: str) -> dict[str, Any]:
        """The file object (the [assumed] shape of RIVYA_API.md, snake_case)."""
        return {
            "id": stored.id,
            "url": media_base + stored.media_path,
            "kind": stored.kind,
            "name": stored.name,
            "mime_type": stored.mime_type,
            "size_bytes": len(stored.data),
            "duration_token": stored.duration_token,
            "created_at": iso(stored.created_wall),
        }

    # -- test controls ---------------------------------------------------------------------

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
