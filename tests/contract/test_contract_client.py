"""The documented JSON examples of RIVYA_API.md fed to the client's models: the client's side.

The emulator's side (its live answers against the same examples) is
``test_contract_emulator.py``; one side cannot silently agree with the other's mistake.
"""

from __future__ import annotations

import pytest
import respx

from rivya_provider.api.client import RivyaClient
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.errors import RivyaError, error_from_response
from rivya_provider.api.models import Credits, Generation, UploadedFile
from tests.contract.documented_examples import (
    CREDITS,
    ERROR_ENVELOPE,
    ERROR_TABLE,
    FILE,
    MODELS,
    TASK_FAILED,
    TASK_QUEUED,
    TASK_SUCCEEDED,
)

BASE_URL = "http://127.0.0.1:9"


def test_the_queued_task_object() -> None:
    generation = Generation.model_validate(TASK_QUEUED)
    assert (generation.id, generation.status, generation.model) == (
        "task_...",
        "queued",
        "qwen-image",
    )
    assert (generation.reserved_credits, generation.final_credits) == (4, 0)
    assert generation.created_at == "2026-05-11T00:00:00.000Z"
    assert (generation.result, generation.error) == (None, None)
    assert not generation.is_terminal


def test_the_succeeded_task_object() -> None:
    generation = Generation.model_validate(TASK_SUCCEEDED)
    assert generation.succeeded
    assert generation.is_terminal
    assert generation.final_credits == 4
    assert generation.result is not None
    assert (generation.result.primary_url, generation.result.urls) == ("<url>", ["<url>"])


def test_the_failed_task_object() -> None:
    generation = Generation.model_validate(TASK_FAILED)
    assert generation.failed
    assert generation.error is not None
    assert (generation.error.code, generation.error.message) == ("generation_failed", "...")


def test_the_credits_answer() -> None:
    assert Credits.model_validate(CREDITS).current_credits == 1234


def test_the_file_upload_answer() -> None:
    uploaded = UploadedFile.model_validate(FILE)
    assert (uploaded.id, uploaded.url, uploaded.kind) == ("file_...", "...", "image")
    assert (uploaded.mime_type, uploaded.size_bytes) == ("image/png", 1234)
    assert uploaded.as_reference().to_api() == {
        "url": "...",
        "kind": "image",
        "name": "...",
        "mimeType": "image/png",
    }


@pytest.mark.parametrize(("code", "status"), sorted(ERROR_TABLE.items()))
def test_the_error_envelope_keeps_code_message_and_request_id(code: str, status: int) -> None:
    body = {"error": {**ERROR_ENVELOPE["error"], "code": code}}
    error = error_from_response(status, body)
    assert isinstance(error, RivyaError)
    assert (error.code, error.status_code) == (code, status)
    assert (error.message, error.request_id) == ("...", "req_...")
    assert error.retryable is (code in ("public_api_disabled", "rate_limited"))


def test_the_model_catalogue_is_read_from_data() -> None:
    config = ClientConfig(api_key="rvya_sk_x", base_url=BASE_URL)
    with respx.mock(base_url=BASE_URL) as router, RivyaClient(config) as client:
        route = router.get("/api/v1/models").respond(200, json=MODELS)
        models = client.list_models()
    assert [model.id for model in models] == ["z-image"]
    z_image = models[0]
    assert (z_image.base_credits, z_image.billing_type, z_image.fixed_price) == (1, "FIXED", 1)
    assert (z_image.display_name, z_image.category, z_image.runtime) == (
        "Z-Image",
        "image",
        "async_task",
    )
    assert (z_image.api_status, z_image.callable, z_image.max_prompt_length) == (
        "available",
        True,
        1000,
    )
    assert z_image.requires_files_api is False
    assert z_image.model_extra == {}  # every documented field is a typed field
    assert "Authorization" not in route.calls.last.request.headers  # public endpoint
