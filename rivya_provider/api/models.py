# Over 400 lines: the request with its per-model rules and every response model of one API.
"""Pydantic models of the Rivya API: the create-generation request, and what the API returns.

Requests are strict (bad input is refused locally, before any credit is spent) and validation
errors surface as :class:`~rivya_provider.api.errors.RivyaValidationError` naming the field and
the rule. Responses are tolerant: unknown fields are kept, undocumented ones are optional.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from rivya_provider.api._validation import (
    accepted_keys,
    check_encodable,
    validation_error_from_pydantic,
)
from rivya_provider.api.config import is_loopback_host
from rivya_provider.api.errors import RivyaValidationError
from rivya_provider.api.uploads import UploadCheck

__all__ = [
    "PARAMS_MODELS",
    "TERMINAL_STATUSES",
    "CreateResult",
    "Credits",
    "DownloadResult",
    "Generation",
    "GenerationErrorInfo",
    "GenerationRequest",
    "GenerationResult",
    "GenerationStatus",
    "ImageSize",
    "ModelParams",
    "OutputFormat",
    "QwenImageParams",
    "ReferenceMediaItem",
    "UploadedFile",
]

ImageSize = Literal[
    "square", "square_hd", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"
]
OutputFormat = Literal["png", "jpeg"]
QwenReferenceMime = Literal["image/jpeg", "image/png", "image/webp"]

MAX_CLIENT_REQUEST_ID = 128
_REFERENCES_AT = "params.referenceMediaItems"


# -- request side ------------------------------------------------------------------------------


class ReferenceMediaItem(BaseModel):
    """One entry of ``params.referenceMediaItems`` (API keys are camelCase).

    Unknown keys given by users (e.g. ``file_id`` from an upload manifest) are ignored.
    ``sha256`` (the content's digest, as :class:`RivyaFileUploadOperator` returns it) is never
    sent: it stands for the file in idempotency keys, so a re-upload of the same bytes under a
    new URL is still the same work.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    url: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    name: str | None = None
    mime_type: str | None = Field(default=None, alias="mimeType")
    duration_seconds: float | None = Field(default=None, alias="durationSeconds")
    duration_token: str | None = Field(default=None, alias="durationToken")
    sha256: str | None = Field(default=None, exclude=True, pattern=r"^[0-9a-f]{64}$")

    def to_api(self) -> dict[str, Any]:
        """The JSON object for the API: camelCase keys, unset fields omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class _QwenReferenceItem(ReferenceMediaItem):
    """A reference accepted by qwen-image: an image in jpeg, png or webp."""

    kind: Literal["image"]
    mime_type: QwenReferenceMime | None = Field(default=None, alias="mimeType")

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
            return url
        raise ValueError(
            "must be an https URL (plain http only on loopback hosts), e.g. the url "
            "RivyaFileUploadOperator returns"
        )


class ModelParams(BaseModel):
    """Base of typed params: one subclass per model id, registered in :data:`PARAMS_MODELS`.

    Class attributes carry the model's prompt rule and its documented price (the local rules:
    the source of truth for validation; the live catalogue is compared against them).
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    prompt_required: ClassVar[bool] = False
    prompt_max_length: ClassVar[int | None] = None
    credits_per_generation: ClassVar[int | None] = None

    def to_api(self) -> dict[str, Any]:
        """The ``params`` JSON object, defaults included, empty lists and ``None`` omitted."""
        dumped = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return {key: value for key, value in dumped.items() if value != []}


class QwenImageParams(ModelParams):
    """Params of ``qwen-image``; any other key is refused."""

    prompt_required: ClassVar[bool] = True
    prompt_max_length: ClassVar[int | None] = 5000
    credits_per_generation: ClassVar[int | None] = 4

    image_size: ImageSize = "square_hd"
    output_format: OutputFormat = "png"
    reference_media_items: list[_QwenReferenceItem] = Field(
        default_factory=list, alias="referenceMediaItems", max_length=1
    )

    @field_validator("reference_media_items", mode="before")
    @classmethod
    def _items_as_dicts(cls, value: Any) -> Any:
        # Accept ReferenceMediaItem / UploadedFile-derived objects as well as plain dicts.
        if isinstance(value, list):
            return [_item_as_dict(item) if isinstance(item, BaseModel) else item for item in value]
        return value


def _item_as_dict(item: BaseModel) -> dict[str, Any]:
    data = item.model_dump(by_alias=True)
    digest = getattr(item, "sha256", None)  # excluded from dumps (never sent), kept here
    return {**data, "sha256": digest} if digest else data


PARAMS_MODELS: dict[str, type[ModelParams]] = {"qwen-image": QwenImageParams}
"""Model id -> typed params. Models not listed here take free-form params (the server checks)."""


class GenerationRequest(BaseModel):
    """The body of ``POST /api/v1/generations``, validated for its model on construction.

    Construction (and :meth:`model_validate`) raises
    :class:`~rivya_provider.api.errors.RivyaValidationError`, e.g.
    ``prompt: must be at most 5000 characters (got 5001)``. For typed models, ``params`` is
    stored normalized: API keys, defaults filled in.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    prompt: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    client_request_id: str | None = Field(default=None, max_length=MAX_CLIENT_REQUEST_ID)

    _reference_sha256: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _raise_rivya_errors(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            raise validation_error_from_pydantic(exc) from None

    @model_validator(mode="after")
    def _check_text_is_unicode(self) -> Self:
        for field, value in (
            ("prompt", self.prompt),
            ("client_request_id", self.client_request_id),
        ):
            check_encodable(field, value)
        check_encodable("params", self.params)
        return self

    @model_validator(mode="after")
    def _check_for_model(self) -> Self:
        spec = PARAMS_MODELS.get(self.model)
        if spec is None:
            try:
                json.dumps(self.params)
            except (TypeError, ValueError) as exc:
                raise RivyaValidationError(
                    f"params: must be plain JSON ({exc})", field="params"
                ) from None
            return self
        self._check_prompt(spec)
        try:
            typed = spec.model_validate(self.params)
        except ValidationError as exc:
            raise validation_error_from_pydantic(
                exc, prefix="params", model=self.model, accepted=accepted_keys(spec)
            ) from None
        self.__dict__["params"] = typed.to_api()
        self._reference_sha256 = {
            item.url: item.sha256
            for item in getattr(typed, "reference_media_items", [])
            if isinstance(item, ReferenceMediaItem) and item.sha256
        }
        return self

    def _check_prompt(self, spec: type[ModelParams]) -> None:
        prompt = self.prompt
        limit = spec.prompt_max_length
        rule = f"1 to {limit} characters" if limit else "at least 1 character"
        if prompt is None or not prompt.strip():
            if not spec.prompt_required:
                return
            if prompt is None:
                problem = f"is required for model {self.model} ({rule})"
            else:
                problem = f"must not be empty or blank for model {self.model} ({rule})"
            raise RivyaValidationError(f"prompt: {problem}", field="prompt")
        if limit is not None and len(prompt) > limit:
            raise RivyaValidationError(
                f"prompt: must be at most {limit} characters (got {len(prompt)})", field="prompt"
            )

    def to_api(self) -> dict[str, Any]:
        """The JSON body: ``model``, then ``prompt``/``params``/``client_request_id`` when set."""
        body: dict[str, Any] = {"model": self.model}
        if self.prompt is not None:
            body["prompt"] = self.prompt
        if self.params:
            body["params"] = self.params
        if self.client_request_id is not None:
            body["client_request_id"] = self.client_request_id
        return body

    def canonical_json(self) -> bytes:
        """The body as canonical JSON: sorted keys, compact separators, UTF-8."""
        return json.dumps(
            self.to_api(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def body_sha256(self) -> str:
        """Hex SHA-256 of :meth:`canonical_json`: the exact body sent."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def references_without_digest(self) -> list[str]:
        """URLs of the references whose content digest is not known (no ``sha256`` given)."""
        items = self.params.get("referenceMediaItems")
        if not isinstance(items, list):
            return []
        return [
            str(item.get("url"))
            for item in items
            if isinstance(item, dict) and item.get("url") not in self._reference_sha256
        ]

    def content_sha256(self) -> str:
        """Hex SHA-256 of the work asked for: the one request digest (idempotency keys, the
        batch's plan, and reuse across runs with ``skip_unchanged``).

        Covers the model, the prompt and the params, with each reference whose content digest
        is known (``sha256`` on the item) counted by that digest, not by its URL: re-uploading the
        same bytes, which gives a new URL, does not make it new work. The ``client_request_id``
        is a trace id, not work: it is left out, so the digest is the same on any run, try or
        worker.
        """
        body = self.to_api()
        body.pop("client_request_id", None)
        items = body.get("params", {}).get("referenceMediaItems")
        if self._reference_sha256 and isinstance(items, list):
            body["params"] = {
                **body["params"],
                "referenceMediaItems": [
                    _content_addressed(item, self._reference_sha256) for item in items
                ],
            }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _content_addressed(item: Any, digests: dict[str, str]) -> Any:
    """A reference item with its URL replaced by ``sha256:<digest>`` when the digest is known."""
    if isinstance(item, dict) and item.get("url") in digests:
        return {**item, "url": f"sha256:{digests[item['url']]}"}
    return item


# -- response side -----------------------------------------------------------------------------


class GenerationStatus(str, enum.Enum):
    """The documented statuses; ``Generation.status`` stays a plain string (others may come)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL_STATUSES = frozenset({GenerationStatus.SUCCEEDED.value, GenerationStatus.FAILED.value})


class GenerationResult(BaseModel):
    """Outputs of a succeeded generation; ``primary_url`` is the first of ``urls``."""

    model_config = ConfigDict(extra="allow")

    primary_url: str | None = None
    urls: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fill_in(self) -> Self:
        if not self.urls and self.primary_url:
            self.urls = [self.primary_url]
        if self.primary_url is None and self.urls:
            self.primary_url = self.urls[0]
        return self


class GenerationErrorInfo(BaseModel):
    """Why a generation failed (``error.code``, ``error.message``)."""

    model_config = ConfigDict(extra="allow")

    code: str = "generation_failed"
    message: str = ""


def epoch_seconds(timestamp: str | None) -> float | None:
    """An ISO 8601 timestamp (``2026-05-11T00:00:00.000Z``; no zone means UTC) as epoch
    seconds, or ``None`` when it is absent or not one."""
    if not timestamp:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


class Generation(BaseModel):
    """A generation (Rivya's "task"), as returned by create and status calls.

    Unknown fields are kept, so ``Generation.model_validate(g.model_dump(mode="json"))``
    round-trips. An unknown status counts as still running.
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    status: str
    model: str | None = None
    reserved_credits: int = 0
    final_credits: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    result: GenerationResult | None = None
    error: GenerationErrorInfo | None = None

    @property
    def created_epoch(self) -> float | None:
        """``created_at`` as epoch seconds (``None``: absent or not a timestamp)."""
        return epoch_seconds(self.created_at)

    @property
    def duration(self) -> float | None:
        """Seconds from ``created_at`` to ``updated_at`` (server clock both): how long a
        finished generation took; ``None`` when either is missing or they are out of order."""
        created, updated = epoch_seconds(self.created_at), epoch_seconds(self.updated_at)
        if created is None or updated is None or updated < created:
            return None
        return updated - created

    @property
    def finished(self) -> bool:
        """Failed, or succeeded *with* results: nothing more will change (``succeeded`` without
        result URLs is not trusted as finished)."""
        return self.failed or (self.succeeded and bool(self.result_urls))

    @property
    def result_urls(self) -> list[str]:
        """The result URLs (empty when there is no result yet, or a broken one)."""
        return list(self.result.urls) if self.result is not None else []

    @property
    def is_terminal(self) -> bool:
        """``succeeded`` or ``failed``; anything else (unknown statuses too) is still running."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """Whether the generation succeeded."""
        return self.status == GenerationStatus.SUCCEEDED.value

    @property
    def failed(self) -> bool:
        """Whether the generation failed (its credits were released)."""
        return self.status == GenerationStatus.FAILED.value

    @property
    def is_known_status(self) -> bool:
        """Whether ``status`` is one of the documented values."""
        return self.status in {status.value for status in GenerationStatus}


@dataclasses.dataclass(frozen=True)
class CreateResult:
    """What ``create_generation`` returns: the generation, and whether it was a replay.

    ``replayed`` is true when the server answered with an existing generation for this
    ``Idempotency-Key`` (header ``Idempotent-Replayed: true``).
    """

    generation: Generation
    replayed: bool = False


@dataclasses.dataclass(frozen=True)
class DownloadResult:
    """What ``download`` wrote: byte count, hex SHA-256, server ``Content-Type``, first bytes."""

    size_bytes: int
    sha256: str
    content_type: str | None
    head: bytes = b""


def _either(snake: str, camel: str) -> AliasChoices:
    return AliasChoices(snake, camel)


class UploadedFile(BaseModel):
    """Response of ``POST /api/v1/files``; tolerant of snake_case or camelCase and a missing id."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = Field(default=None, validation_alias=_either("id", "fileId"))
    url: str = Field(min_length=1)
    kind: str | None = None
    name: str | None = None
    mime_type: str | None = Field(default=None, validation_alias=_either("mime_type", "mimeType"))
    size_bytes: int | None = Field(
        default=None, validation_alias=_either("size_bytes", "sizeBytes")
    )
    duration_seconds: float | None = Field(
        default=None, validation_alias=_either("duration_seconds", "durationSeconds")
    )
    duration_token: str | None = Field(
        default=None, validation_alias=_either("duration_token", "durationToken")
    )
    created_at: str | None = Field(
        default=None, validation_alias=_either("created_at", "createdAt")
    )

    _check: UploadCheck | None = PrivateAttr(default=None)
    _sha256: str | None = PrivateAttr(default=None)

    @property
    def check(self) -> UploadCheck | None:
        """What the client checked locally before sending (``None`` when not uploaded here)."""
        return self._check

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the bytes uploaded (``None`` when not uploaded here)."""
        return self._sha256

    def with_check(self, check: UploadCheck, sha256: str | None = None) -> UploadedFile:
        """A copy that remembers the local check, and the digest, of the uploaded bytes."""
        copy = self.model_copy()
        copy._check = check
        copy._sha256 = sha256
        return copy

    def as_reference(self) -> ReferenceMediaItem:
        """This file as a ``referenceMediaItems`` entry."""
        return ReferenceMediaItem(
            url=self.url,
            kind=self.kind or "image",
            name=self.name,
            mime_type=self.mime_type,
            duration_seconds=self.duration_seconds,
            duration_token=self.duration_token,
            sha256=self._sha256,
        )


class Credits(BaseModel):
    """Response of ``GET /api/v1/credits``."""

    model_config = ConfigDict(extra="allow")

    current_credits: int = Field(validation_alias=_either("current_credits", "currentCredits"))
