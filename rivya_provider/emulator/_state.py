"""In-memory emulator state: keys, generations, files, credits ledger, request log.

Every method is synchronous and the app runs on one event loop, so each check-and-update (for
example the credits check and the reservation) is atomic with respect to concurrent requests.
Generation status is computed from timestamps on read; nothing runs in the background.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import json
import math
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from rivya_provider.emulator._catalogue import (
    FILE_MIME_TYPES,
    FILE_SIZE_LIMITS,
    MAX_CLIENT_REQUEST_ID,
    MODELS,
    GenerationRequest,
    ModelSpec,
    ValidationFailed,
    validate_generation_body,
)
from rivya_provider.emulator._config import EmulatorConfig, KeyConfig
from rivya_provider.emulator._controls import FaultRule, TestControls
from rivya_provider.emulator._records import (
    ApiError,
    Caller,
    Generation,
    StoredFile,
    iso,
    new_id,
    validation_error,
)

FAIL_MARKER = "[[fail]]"
IDEMPOTENCY_TTL = 24 * 3600.0
MAX_IDEMPOTENCY_KEY = 255
REQUEST_LOG_LIMIT = 100_000
ENDPOINT_SCOPES: Mapping[str, str] = {
    "create_generation": "generations:create",
    "get_generation": "generations:read",
    "upload_file": "files:create",
    "get_file": "files:read",
    "credits": "credits:read",
}


def body_hash(body: Any) -> str:
    """Hash of a JSON body, independent of key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class EmulatorState(TestControls):
    """All mutable state of one emulator instance (test controls in ``_controls``)."""

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
