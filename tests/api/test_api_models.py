"""Request validation (local, named rules) and tolerant response models."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from rivya_provider.api.catalogue import ModelInfo
from rivya_provider.api.errors import RivyaValidationError
from rivya_provider.api.models import (
    PARAMS_MODELS,
    Credits,
    Generation,
    GenerationRequest,
    GenerationStatus,
    QwenImageParams,
    ReferenceMediaItem,
    UploadedFile,
)

REF = {"url": "https://rivya.ai/u/ref.png", "kind": "image"}

# (kwargs, field, exact message)
INVALID = [
    (
        {"prompt": "x" * 5001},
        "prompt",
        "prompt: must be at most 5000 characters (got 5001)",
    ),
    (
        {"prompt": ""},
        "prompt",
        "prompt: must not be empty or blank for model qwen-image (1 to 5000 characters)",
    ),
    (
        {"prompt": "   \n"},
        "prompt",
        "prompt: must not be empty or blank for model qwen-image (1 to 5000 characters)",
    ),
    (
        {"prompt": None},
        "prompt",
        "prompt: is required for model qwen-image (1 to 5000 characters)",
    ),
    (
        {"params": {"image_size": "huge"}},
        "params.image_size",
        "params.image_size: must be one of square, square_hd, portrait_4_3, portrait_16_9, "
        "landscape_4_3, landscape_16_9 (got 'huge')",
    ),
    (
        {"params": {"output_format": "gif"}},
        "params.output_format",
        "params.output_format: must be one of png, jpeg (got 'gif')",
    ),
    (
        {"params": {"referenceMediaItems": [REF, REF]}},
        "params.referenceMediaItems",
        "params.referenceMediaItems: must have at most 1 item (got 2)",
    ),
    (
        {"params": {"referenceMediaItems": [{**REF, "kind": "video"}]}},
        "params.referenceMediaItems[0].kind",
        "params.referenceMediaItems[0].kind: must be 'image' (got 'video')",
    ),
    (
        {"params": {"referenceMediaItems": [{**REF, "mimeType": "image/gif"}]}},
        "params.referenceMediaItems[0].mimeType",
        "params.referenceMediaItems[0].mimeType: must be one of image/jpeg, image/png, "
        "image/webp (got 'image/gif')",
    ),
    (
        {"params": {"referenceMediaItems": [{"kind": "image"}]}},
        "params.referenceMediaItems[0].url",
        "params.referenceMediaItems[0].url: is required",
    ),
    (
        {"params": {"seed": 7}},
        "params.seed",
        "params.seed: is not accepted by model qwen-image (got 7; accepted: image_size, "
        "output_format, referenceMediaItems)",
    ),
    (
        {"files": [REF]},
        "files",
        "files: is not accepted; put reference media in params.referenceMediaItems",
    ),
    (
        {"client_request_id": "c" * 129},
        "client_request_id",
        "client_request_id: must be at most 128 characters (got 129)",
    ),
]


@pytest.mark.parametrize(("changes", "field", "message"), INVALID)
def test_validation_messages_name_field_and_rule(
    changes: dict[str, Any], field: str, message: str
) -> None:
    kwargs: dict[str, Any] = {"model": "qwen-image", "prompt": "a red fox", **changes}
    with pytest.raises(RivyaValidationError) as caught:
        GenerationRequest(**kwargs)
    assert caught.value.field == field
    assert caught.value.message == message
    assert caught.value.status_code is None


def test_model_validate_and_the_constructor_raise_the_same_error() -> None:
    with pytest.raises(RivyaValidationError, match=r"params\.image_size"):
        GenerationRequest.model_validate(
            {"model": "qwen-image", "prompt": "a", "params": {"image_size": 1}}
        )
    with pytest.raises(RivyaValidationError, match="prompt: must be at most 5000"):
        GenerationRequest(model="qwen-image", prompt="y" * 5001)


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(RivyaValidationError) as caught:
        GenerationRequest(
            model="qwen-image", prompt="a", params={"image_size": "huge", "output_format": "gif"}
        )
    assert caught.value.field == "params.image_size"
    assert "params.output_format: must be one of png, jpeg" in caught.value.message


def test_prompt_at_the_limit_is_accepted() -> None:
    assert len(GenerationRequest(model="qwen-image", prompt="z" * 5000).prompt or "") == 5000


def test_qwen_body_is_explicit_with_api_keys() -> None:
    request = GenerationRequest(
        model="qwen-image",
        prompt="a lighthouse",
        params={
            "image_size": "landscape_16_9",
            "reference_media_items": [
                ReferenceMediaItem(url="https://x/r.png", kind="image", mime_type="image/png")
            ],
        },
        client_request_id="airflow:d/t/r/-1",
    )
    assert request.to_api() == {
        "model": "qwen-image",
        "prompt": "a lighthouse",
        "params": {
            "image_size": "landscape_16_9",
            "output_format": "png",
            "referenceMediaItems": [
                {"url": "https://x/r.png", "kind": "image", "mimeType": "image/png"}
            ],
        },
        "client_request_id": "airflow:d/t/r/-1",
    }


def test_defaults_are_included_and_empty_references_omitted() -> None:
    body = GenerationRequest(model="qwen-image", prompt="p").to_api()
    assert body == {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"image_size": "square_hd", "output_format": "png"},
    }


def test_reference_items_tolerate_user_extras() -> None:
    item = {**REF, "file_id": "file_1", "mimeType": "image/webp", "name": None}
    request = GenerationRequest(
        model="qwen-image", prompt="p", params={"referenceMediaItems": [item]}
    )
    assert request.params["referenceMediaItems"] == [{**REF, "mimeType": "image/webp"}]
    assert ReferenceMediaItem.model_validate(item).to_api() == {**REF, "mimeType": "image/webp"}


def test_uploaded_file_reference_round_trips_into_a_request() -> None:
    uploaded = UploadedFile.model_validate(
        {"url": "https://x/u.png", "kind": "image", "mime_type": "image/png", "name": "u.png"}
    )
    request = GenerationRequest(
        model="qwen-image", prompt="p", params={"referenceMediaItems": [uploaded.as_reference()]}
    )
    assert request.params["referenceMediaItems"][0] == {
        "url": "https://x/u.png",
        "kind": "image",
        "name": "u.png",
        "mimeType": "image/png",
    }


def test_body_sha256_is_the_hash_of_canonical_json() -> None:
    request = GenerationRequest(model="qwen-image", prompt="été", client_request_id="c")
    canonical = json.dumps(
        request.to_api(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert request.canonical_json() == canonical
    assert request.body_sha256() == hashlib.sha256(canonical).hexdigest()


def test_body_sha256_ignores_spelling_but_not_content() -> None:
    a = GenerationRequest(
        model="qwen-image", prompt="p", params={"output_format": "png", "image_size": "square"}
    )
    b = GenerationRequest(model="qwen-image", prompt="p", params={"image_size": "square"})
    c = GenerationRequest(model="qwen-image", prompt="q", params={"image_size": "square"})
    assert a.body_sha256() == b.body_sha256()
    assert a.body_sha256() != c.body_sha256()


def test_round_trip_of_a_validated_body() -> None:
    request = GenerationRequest(model="qwen-image", prompt="p", params={"image_size": "square"})
    assert GenerationRequest.model_validate(request.to_api()) == request


def test_other_models_take_free_form_params() -> None:
    request = GenerationRequest(model="flux-schnell", params={"aspect_ratio": "16:9", "seed": 1})
    assert request.to_api() == {
        "model": "flux-schnell",
        "params": {"aspect_ratio": "16:9", "seed": 1},
    }
    with pytest.raises(RivyaValidationError, match="params: must be plain JSON"):
        GenerationRequest(model="flux-schnell", params={"seed": object()})


def test_registry_maps_qwen_to_its_params_model() -> None:
    assert PARAMS_MODELS["qwen-image"] is QwenImageParams
    assert QwenImageParams.prompt_max_length == 5000
    with pytest.raises(RivyaValidationError, match="model: must be at least 1 character"):
        GenerationRequest(model="", prompt="p")


@pytest.mark.parametrize(
    ("status", "terminal", "succeeded", "failed"),
    [
        ("queued", False, False, False),
        ("processing", False, False, False),
        ("succeeded", True, True, False),
        ("failed", True, False, True),
        ("paused_for_moderation", False, False, False),
    ],
)
def test_generation_status_helpers(
    status: str, terminal: bool, succeeded: bool, failed: bool
) -> None:
    g = Generation.model_validate({"id": "task_1", "status": status})
    assert (g.is_terminal, g.succeeded, g.failed) == (terminal, succeeded, failed)
    assert g.is_known_status is (status in {s.value for s in GenerationStatus})


def test_generation_round_trips_and_keeps_unknown_fields() -> None:
    data = {
        "id": "task_1",
        "status": "succeeded",
        "model": "qwen-image",
        "reserved_credits": 4,
        "final_credits": 4,
        "created_at": "2026-05-11T00:00:00.000Z",
        "updated_at": "2026-05-11T00:00:05.000Z",
        "result": {"primary_url": "https://x/1.png", "urls": ["https://x/1.png"], "w": 1},
        "error": None,
        "priority": "high",
    }
    g = Generation.model_validate(data)
    dumped = g.model_dump(mode="json")
    assert dumped == data
    assert Generation.model_validate(dumped) == g
    assert json.loads(json.dumps(dumped)) == dumped


def test_generation_result_fills_primary_url_and_urls() -> None:
    only_urls = Generation.model_validate(
        {"id": "t", "status": "succeeded", "result": {"urls": ["https://x/a", "https://x/b"]}}
    )
    assert only_urls.result is not None
    assert only_urls.result.primary_url == "https://x/a"
    only_primary = Generation.model_validate(
        {"id": "t", "status": "succeeded", "result": {"primary_url": "https://x/a"}}
    )
    assert only_primary.result is not None
    assert only_primary.result.urls == ["https://x/a"]


def test_generation_requires_id_and_status() -> None:
    with pytest.raises(ValueError, match="status"):
        Generation.model_validate({"id": "task_1"})


@pytest.mark.parametrize(
    "data",
    [
        {"id": "file_1", "url": "u", "kind": "audio", "mime_type": "audio/mpeg",
         "size_bytes": 3, "duration_token": "dt", "duration_seconds": 1.5},
        {"id": "file_1", "url": "u", "kind": "audio", "mimeType": "audio/mpeg",
         "sizeBytes": 3, "durationToken": "dt", "durationSeconds": 1.5},
    ],
)  # fmt: skip
def test_uploaded_file_accepts_snake_or_camel_case(data: dict[str, Any]) -> None:
    uploaded = UploadedFile.model_validate(data)
    assert (uploaded.mime_type, uploaded.size_bytes, uploaded.duration_token) == (
        "audio/mpeg",
        3,
        "dt",
    )
    assert uploaded.as_reference().to_api() == {
        "url": "u",
        "kind": "audio",
        "mimeType": "audio/mpeg",
        "durationSeconds": 1.5,
        "durationToken": "dt",
    }


def test_uploaded_file_without_id_or_kind() -> None:
    uploaded = UploadedFile.model_validate({"url": "https://x/f.png", "created_at": "now"})
    assert uploaded.id is None
    assert uploaded.as_reference().kind == "image"


def test_credits_and_model_info_are_tolerant() -> None:
    assert Credits.model_validate({"current_credits": 1000}).current_credits == 1000
    assert Credits.model_validate({"currentCredits": 7, "other": 1}).current_credits == 7
    info = ModelInfo.model_validate({"id": "qwen-image", "credits": 4, "capability": "image"})
    assert info.id == "qwen-image"
    assert info.model_extra == {"credits": 4, "capability": "image"}
    assert (info.api_status, info.callable, info.fixed_price) == (None, False, None)
    priced = ModelInfo.model_validate({"id": "m", "base_credits": 3, "billing_type": "PER_SECOND"})
    assert priced.fixed_price is None  # only FIXED billing is a price per generation
