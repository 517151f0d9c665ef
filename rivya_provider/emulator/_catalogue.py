"""The emulated model catalogue and the validation of create-generation bodies.

``GET /api/v1/models`` answers the documented shape (RIVYA_API.md, "Model catalogue"):
``{"object": "list", "data": [{"id", "display_name", "category", "runtime", "base_credits",
"billing_type", "supported_modes", "max_prompt_length", "reference_media", "params",
"api_status", "api_input_status", "supported_api_inputs", "requires_files_api",
"requires_upload_for_modes", "url_input_supported", "file_kinds", "chat_capabilities",
"notices"}]}``; no other field is added.

``qwen-image`` follows RIVYA_API.md (4 credits, FIXED, image, async_task, available, prompt
<= 5000, references optional). ``flux-schnell`` is invented by the emulator (the real catalogue
is dynamic): an image model with *different* param names (``aspect_ratio``, ``seed``,
``num_inference_steps``), 2 credits and no reference media. ``flux-dev`` is invented too and
listed ``coming_soon``: creates for it are refused.

[assumed] element formats the documentation leaves open:

* ``params[]``: ``{"name", "type", "required", "default"?, "enum"?, "minimum"?, "maximum"?}``
  per parameter;
* ``reference_media``: ``null`` when the model takes none, else ``{"max_items", "kinds",
  "max_bytes", "mime_types"}``;
* a create naming a model that is not ``available`` answers 400 ``validation_failed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

MB = 1024 * 1024
"""One megabyte as the emulator counts it (the documentation's "10 MB" is 10 * MB bytes)."""

FILE_SIZE_LIMITS: Mapping[str, int] = {"image": 10 * MB, "video": 50 * MB, "audio": 10 * MB}
FILE_MIME_TYPES: Mapping[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png", "image/webp"}),
    "video": frozenset({"video/mp4", "video/quicktime", "video/webm"}),
    "audio": frozenset(
        {"audio/mpeg", "audio/mp4", "audio/wav", "audio/x-wav", "audio/aac", "audio/ogg"}
    ),
}

QWEN_IMAGE_SIZES: Mapping[str, tuple[int, int]] = {
    "square": (512, 512),
    "square_hd": (1024, 1024),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
QWEN_OUTPUT_FORMATS = ("png", "jpeg")
FLUX_ASPECT_RATIOS: Mapping[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "4:3": (1152, 896),
    "3:4": (896, 1152),
}
REFERENCE_ITEM_FIELDS = frozenset(
    {"url", "kind", "name", "mimeType", "durationSeconds", "durationToken"}
)
BODY_FIELDS = frozenset({"model", "prompt", "params", "client_request_id"})
MAX_CLIENT_REQUEST_ID = 128


class ValidationFailed(Exception):
    """The body, model, prompt or params are invalid (``validation_failed``, HTTP 400)."""


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """What a valid request will produce."""

    width: int
    height: int
    fmt: str  # "png" or "jpeg"
    reference_urls: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of the catalogue."""

    id: str
    name: str
    credits: int
    max_prompt_length: int
    params_schema: Mapping[str, Any]
    parse_params: Callable[[Mapping[str, Any]], OutputSpec]
    reference_kinds: frozenset[str] = frozenset()
    api_status: str = "available"

    def catalogue_entry(self) -> dict[str, Any]:
        """The JSON object listed by ``GET /api/v1/models`` (the documented fields only)."""
        modes = ["text-to-image", *(["image-to-image"] if self.reference_kinds else [])]
        inputs = ["text", *(["url"] if self.reference_kinds else [])]
        return {
            "id": self.id,
            "display_name": self.name,
            "category": "image",
            "runtime": "async_task",
            "base_credits": self.credits,
            "billing_type": "FIXED",
            "supported_modes": modes,
            "max_prompt_length": self.max_prompt_length,
            "reference_media": self._reference_media(),
            "params": [
                {"name": name, "required": False, **spec}
                for name, spec in self.params_schema.items()
                if name != "referenceMediaItems"
            ],
            "api_status": self.api_status,
            "api_input_status": (
                "available_url_input" if self.reference_kinds else "available_text"
            ),
            "supported_api_inputs": inputs,
            "requires_files_api": False,
            "requires_upload_for_modes": [],
            "url_input_supported": bool(self.reference_kinds),
            "file_kinds": sorted(self.reference_kinds),
            "chat_capabilities": None,
            "notices": [],
        }

    def _reference_media(self) -> dict[str, Any] | None:
        if not self.reference_kinds:
            return None
        spec = dict(self.params_schema.get("referenceMediaItems", {}))
        spec.pop("type", None)
        return spec


def _parse_qwen_params(params: Mapping[str, Any]) -> OutputSpec:
    unknown = set(params) - {"image_size", "output_format", "referenceMediaItems"}
    if unknown:
        raise ValidationFailed(
            f"qwen-image does not accept params {sorted(unknown)}; accepted: image_size, "
            "output_format, referenceMediaItems"
        )
    size = params.get("image_size", "square_hd")
    if size not in QWEN_IMAGE_SIZES:
        raise ValidationFailed(f"params.image_size must be one of {list(QWEN_IMAGE_SIZES)}")
    fmt = params.get("output_format", "png")
    if fmt not in QWEN_OUTPUT_FORMATS:
        raise ValidationFailed(f"params.output_format must be one of {list(QWEN_OUTPUT_FORMATS)}")
    urls = _parse_references(params.get("referenceMediaItems"), max_items=1)
    width, height = QWEN_IMAGE_SIZES[size]
    return OutputSpec(width, height, fmt, urls)


def _parse_references(items: Any, *, max_items: int) -> tuple[str, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ValidationFailed("params.referenceMediaItems must be an array")
    if len(items) > max_items:
        raise ValidationFailed(f"params.referenceMediaItems accepts at most {max_items} item(s)")
    urls: list[str] = []
    for index, item in enumerate(items):
        where = f"params.referenceMediaItems[{index}]"
        if not isinstance(item, dict):
            raise ValidationFailed(f"{where} must be an object")
        unknown = set(item) - REFERENCE_ITEM_FIELDS
        if unknown:
            raise ValidationFailed(f"{where} has unknown fields {sorted(unknown)}")
        url = item.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValidationFailed(f"{where}.url is required and must be an http(s) URL")
        kind = item.get("kind")
        if kind is None:
            raise ValidationFailed(f"{where}.kind is required")
        if kind != "image":
            raise ValidationFailed(f"{where}.kind must be 'image' for this model")
        mime = item.get("mimeType")
        if mime is not None and mime not in FILE_MIME_TYPES["image"]:
            raise ValidationFailed(
                f"{where}.mimeType must be one of {sorted(FILE_MIME_TYPES['image'])}"
            )
        for name in ("name", "durationToken"):
            if item.get(name) is not None and not isinstance(item[name], str):
                raise ValidationFailed(f"{where}.{name} must be a string")
        seconds = item.get("durationSeconds")
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, (int, float))
        ):
            raise ValidationFailed(f"{where}.durationSeconds must be a number")
        urls.append(url)
    return tuple(urls)


def _parse_flux_params(params: Mapping[str, Any]) -> OutputSpec:
    if "referenceMediaItems" in params:
        raise ValidationFailed("flux-schnell does not accept referenceMediaItems")
    ratio = params.get("aspect_ratio", "1:1")
    if ratio not in FLUX_ASPECT_RATIOS:
        raise ValidationFailed(f"params.aspect_ratio must be one of {list(FLUX_ASPECT_RATIOS)}")
    seed = params.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32
    ):
        raise ValidationFailed("params.seed must be an integer in [0, 2**32)")
    steps = params.get("num_inference_steps")
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 8
    ):
        raise ValidationFailed("params.num_inference_steps must be an integer in [1, 8]")
    width, height = FLUX_ASPECT_RATIOS[ratio]
    return OutputSpec(width, height, "png")


QWEN_IMAGE = ModelSpec(
    id="qwen-image",
    name="Qwen Image",
    credits=4,
    max_prompt_length=5000,
    params_schema={
        "image_size": {"type": "string", "enum": list(QWEN_IMAGE_SIZES), "default": "square_hd"},
        "output_format": {"type": "string", "enum": list(QWEN_OUTPUT_FORMATS), "default": "png"},
        "referenceMediaItems": {
            "type": "array",
            "max_items": 1,
            "kinds": ["image"],
            "max_bytes": FILE_SIZE_LIMITS["image"],
            "mime_types": sorted(FILE_MIME_TYPES["image"]),
        },
    },
    parse_params=_parse_qwen_params,
    reference_kinds=frozenset({"image"}),
)

FLUX_SCHNELL = ModelSpec(
    id="flux-schnell",
    name="FLUX.1 schnell (emulator)",
    credits=2,
    max_prompt_length=2000,
    params_schema={
        "aspect_ratio": {"type": "string", "enum": list(FLUX_ASPECT_RATIOS), "default": "1:1"},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
        "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 8, "default": 4},
    },
    parse_params=_parse_flux_params,
)

FLUX_DEV = dataclasses.replace(
    FLUX_SCHNELL, id="flux-dev", name="FLUX.1 dev (emulator)", credits=6, api_status="coming_soon"
)

MODELS: Mapping[str, ModelSpec] = {m.id: m for m in (QWEN_IMAGE, FLUX_SCHNELL, FLUX_DEV)}


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """A validated create-generation body."""

    model: ModelSpec
    prompt: str
    params: Mapping[str, Any]
    client_request_id: str | None
    output: OutputSpec


def validate_generation_body(body: Any) -> GenerationRequest:
    """Validate a create-generation body; raise :class:`ValidationFailed` with a reason."""
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    if "files" in body:
        raise ValidationFailed(
            "a top-level 'files' field is not accepted; put reference media in "
            "params.referenceMediaItems"
        )
    unknown = set(body) - BODY_FIELDS
    if unknown:
        raise ValidationFailed(f"unknown fields {sorted(unknown)}")
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise ValidationFailed("model is required")
    model = MODELS.get(model_id)
    if model is None:
        raise ValidationFailed(f"unknown model {model_id!r}; see GET /api/v1/models")
    if model.api_status != "available":
        raise ValidationFailed(
            f"model {model.id} is not available through the API (api_status {model.api_status})"
        )
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValidationFailed(f"prompt is required for {model.id}")
    if len(prompt) > model.max_prompt_length:
        raise ValidationFailed(
            f"prompt is {len(prompt)} characters; {model.id} accepts at most "
            f"{model.max_prompt_length}"
        )
    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationFailed("params must be an object")
    client_request_id = body.get("client_request_id")
    if client_request_id is not None and (
        not isinstance(client_request_id, str) or len(client_request_id) > MAX_CLIENT_REQUEST_ID
    ):
        raise ValidationFailed(
            f"client_request_id must be a string of at most {MAX_CLIENT_REQUEST_ID} characters"
        )
    output = model.parse_params(params)
    return GenerationRequest(model, prompt, params, client_request_id, output)
