"""The documented JSON examples of RIVYA_API.md held against the emulator's real responses.

The examples are copied here literally (placeholders such as ``"task_..."`` included) so the
test does not depend on reading the document. A response matches an example when it has the
same keys, the same JSON types, the same id prefixes and timestamp format, and enum values
from the documented sets.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rivya_provider.testing.emulator_process import RivyaEmulator
from tests.contract.documented_examples import (
    CREDITS,
    ERROR_ENVELOPE,
    ERROR_TABLE,
    FILE,
    FILE_KINDS,
    MODELS,
    TASK_FAILED,
    TASK_QUEUED,
    TASK_STATUSES,
    TASK_SUCCEEDED,
)

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8cfc0f01f0005000201e2e9d4c10000000049454e44ae426082"
)


def assert_matches(example: Any, actual: Any, where: str = "$") -> None:
    """``actual`` has the example's keys, JSON types, id prefixes and timestamp format."""
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert set(actual) == set(example), f"{where}: keys {sorted(actual)} != {sorted(example)}"
        for key, value in example.items():
            assert_matches(value, actual[key], f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(actual, list), f"{where}: expected an array"
        assert actual, f"{where}: expected a non-empty array"
        for index, item in enumerate(actual):
            assert_matches(example[0], item, f"{where}[{index}]")
    elif example is None:
        assert actual is None, f"{where}: expected null, got {actual!r}"
    elif isinstance(example, bool):
        assert isinstance(actual, bool), f"{where}: expected a boolean"
    elif isinstance(example, int):
        assert isinstance(actual, int), f"{where}: expected an integer, got {actual!r}"
        assert not isinstance(actual, bool)
        assert actual >= 0, f"{where}: negative"
    else:
        assert isinstance(actual, str), f"{where}: expected a string, got {actual!r}"
        assert actual, f"{where}: empty string"
        if example.endswith("_..."):
            prefix = example[:-3]
            assert actual.startswith(prefix), f"{where}: {actual!r} lacks prefix {prefix!r}"
        if TIMESTAMP.match(example) or where.endswith("_at"):
            assert TIMESTAMP.match(actual), f"{where}: {actual!r} is not like {example!r}"
        if example == "<url>" or where.endswith(".url"):
            assert actual.startswith(("http://", "https://")), f"{where}: not a URL"


@pytest.fixture
def emulator(rivya_emulator: RivyaEmulator) -> RivyaEmulator:
    """The session emulator, reset, with a short latency."""
    rivya_emulator.configure(latency=0.3)
    return rivya_emulator


@pytest.fixture
def client(emulator: RivyaEmulator) -> Iterator[httpx.Client]:
    """An authenticated client of the emulator's public API."""
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=10.0) as http:
        yield http


def _create(client: httpx.Client, prompt: str = "contract") -> httpx.Response:
    return client.post("/api/v1/generations", json={"model": "qwen-image", "prompt": prompt})


def _wait(client: httpx.Client, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        task: dict[str, Any] = client.get(f"/api/v1/generations/{task_id}").json()
        assert_matches(TASK_QUEUED if task["result"] is None else TASK_SUCCEEDED, task)
        assert task["status"] in TASK_STATUSES
        if task["status"] in ("succeeded", "failed"):
            return task
        time.sleep(0.05)
    raise AssertionError("generation never finished")


def test_queued_task_matches_the_example(client: httpx.Client) -> None:
    response = _create(client)
    assert 200 <= response.status_code < 300
    task = response.json()
    assert_matches(TASK_QUEUED, task)
    assert (task["status"], task["model"]) == ("queued", "qwen-image")
    assert (task["reserved_credits"], task["final_credits"]) == (4, 0)


def test_status_response_matches_while_processing(
    emulator: RivyaEmulator, client: httpx.Client
) -> None:
    emulator.configure(latency=3)
    task_id = _create(client).json()["id"]
    time.sleep(0.7)
    task = client.get(f"/api/v1/generations/{task_id}").json()
    assert_matches(TASK_QUEUED, task)
    assert task["status"] == "processing"


def test_succeeded_task_matches_the_example(client: httpx.Client) -> None:
    task = _wait(client, _create(client).json()["id"])
    assert_matches(TASK_SUCCEEDED, task)
    assert task["status"] == "succeeded"
    assert task["final_credits"] == task["reserved_credits"] == 4
    assert task["result"]["primary_url"] == task["result"]["urls"][0]


def test_failed_task_matches_the_example(client: httpx.Client) -> None:
    task_id = _create(client, prompt="[[fail]]").json()["id"]
    deadline = time.monotonic() + 10
    while (task := client.get(f"/api/v1/generations/{task_id}").json())["status"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert_matches(TASK_FAILED, task)
    assert task["error"]["code"] == "generation_failed"
    assert task["final_credits"] == 0


def test_credits_match_the_example(client: httpx.Client) -> None:
    response = client.get("/api/v1/credits")
    assert response.status_code == 200
    assert_matches(CREDITS, response.json())


def test_file_matches_the_assumed_shape(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/files",
        data={"kind": "image", "model": "qwen-image"},
        files={"file": ("dot.png", PNG_1x1, "image/png")},
    )
    assert response.status_code in (200, 201)
    body = response.json()
    assert_matches(FILE, body)
    assert body["kind"] in FILE_KINDS
    assert body["mime_type"] == "image/png"
    assert body["size_bytes"] == len(PNG_1x1)
    assert_matches(FILE, client.get(f"/api/v1/files/{body['id']}").json())


def _provoke(code: str, emulator: RivyaEmulator, client: httpx.Client) -> httpx.Response:
    """Make the emulator answer ``code`` through the public API."""
    good = {"model": "qwen-image", "prompt": "p"}
    url = f"{emulator.base_url}/api/v1/generations"
    if code == "public_api_disabled":
        emulator.configure(api_disabled=True)
        return _create(client)
    if code == "api_key_missing":
        return httpx.post(url, json=good)
    if code in ("api_key_invalid", "api_key_revoked", "api_key_expired"):
        state = {"api_key_revoked": "revoked", "api_key_expired": "expired"}.get(code)
        if state:
            emulator.add_key("rvya_sk_special", state=state)
        return httpx.post(url, json=good, headers={"Authorization": "Bearer rvya_sk_special"})
    if code == "api_scope_denied":
        emulator.add_key("rvya_sk_special", scopes=["credits:read"])
        return httpx.post(url, json=good, headers={"Authorization": "Bearer rvya_sk_special"})
    if code == "rate_limited":
        emulator.configure(rate_limit=0)
        return _create(client)
    if code == "validation_failed":
        return client.post("/api/v1/generations", json={**good, "files": []})
    if code == "not_found":
        return client.get("/api/v1/generations/task_missing")
    if code == "idempotency_conflict":
        client.post("/api/v1/generations", json=good, headers={"Idempotency-Key": "c"})
        other = {**good, "prompt": "q"}
        return client.post("/api/v1/generations", json=other, headers={"Idempotency-Key": "c"})
    if code == "insufficient_credits":
        emulator.configure(credits=0)
        return _create(client)
    raise AssertionError(code)


@pytest.mark.parametrize(("code", "status"), ERROR_TABLE.items())
def test_each_error_code_has_the_documented_status_and_envelope(
    code: str, status: int, emulator: RivyaEmulator, client: httpx.Client
) -> None:
    response = _provoke(code, emulator, client)
    assert response.status_code == status
    body = response.json()
    assert_matches(ERROR_ENVELOPE, body)
    assert body["error"]["code"] == code
    if code == "rate_limited":
        assert int(response.headers["retry-after"]) >= 1


def test_idempotent_replay_is_marked(client: httpx.Client) -> None:
    body = {"model": "qwen-image", "prompt": "once"}
    first = client.post("/api/v1/generations", json=body, headers={"Idempotency-Key": "r"})
    again = client.post("/api/v1/generations", json=body, headers={"Idempotency-Key": "r"})
    assert 200 <= again.status_code < 300
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert_matches(TASK_QUEUED, again.json())


#: Catalogue fields whose element format is not documented ([assumed]): any JSON is allowed.
UNDOCUMENTED_FORMATS = ("params", "reference_media", "chat_capabilities")


def test_the_model_catalogue_matches_the_documented_example(emulator: RivyaEmulator) -> None:
    response = httpx.get(f"{emulator.base_url}/api/v1/models")  # public: no key
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"object", "data"}
    assert body["object"] == "list"
    example = MODELS["data"][0]
    for entry in body["data"]:
        where = f"$.data[{entry['id']}]"
        assert set(entry) == set(example), where
        for key, documented in example.items():
            if key in UNDOCUMENTED_FORMATS:
                continue  # [assumed]: any JSON
            assert type(entry[key]) is type(documented), f"{where}.{key}"
            if isinstance(documented, list) and documented:
                assert all(isinstance(item, type(documented[0])) for item in entry[key])
        assert entry["api_status"] in ("available", "coming_soon", "studio_only")
        assert entry["category"] in ("image", "video", "audio", "chat")
    by_id = {entry["id"]: entry for entry in body["data"]}
    qwen = by_id["qwen-image"]
    assert (qwen["base_credits"], qwen["billing_type"], qwen["category"]) == (4, "FIXED", "image")
    assert (qwen["runtime"], qwen["api_status"], qwen["max_prompt_length"]) == (
        "async_task",
        "available",
        5000,
    )
    assert qwen["requires_files_api"] is False
    assert qwen["reference_media"]["max_items"] == 1
    sizes = next(p for p in qwen["params"] if p["name"] == "image_size")
    assert sizes["enum"] == [
        "square",
        "square_hd",
        "portrait_4_3",
        "portrait_16_9",
        "landscape_4_3",
        "landscape_16_9",
    ]
    assert sizes["default"] == "square_hd"
    assert [m["api_status"] for m in body["data"]].count("coming_soon") == 1


def test_a_coming_soon_model_is_refused_and_charges_nothing(
    emulator: RivyaEmulator, client: httpx.Client
) -> None:
    listed = httpx.get(f"{emulator.base_url}/api/v1/models").json()["data"]
    coming = next(m["id"] for m in listed if m["api_status"] == "coming_soon")
    response = client.post("/api/v1/generations", json={"model": coming, "prompt": "p"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_failed"
    assert emulator.ledger()["entries"] == []


# -- the same live answers read by the client's models: no field beyond the documented ones --


def test_live_answers_parse_into_the_client_models_with_nothing_left_over(
    emulator: RivyaEmulator, client: httpx.Client
) -> None:
    from rivya_provider.api.catalogue import ModelInfo
    from rivya_provider.api.models import Credits, Generation, UploadedFile

    created = _create(client).json()
    done = _wait(client, created["id"])
    uploaded = client.post(
        "/api/v1/files",
        data={"kind": "image"},
        files={"file": ("dot.png", PNG_1x1, "image/png")},
    ).json()
    answers = [
        (Generation, created),
        (Generation, done),
        (Credits, client.get("/api/v1/credits").json()),
        (UploadedFile, uploaded),
        *((ModelInfo, m) for m in httpx.get(f"{emulator.base_url}/api/v1/models").json()["data"]),
    ]
    for model, answer in answers:
        parsed = model.model_validate(answer)
        assert parsed.model_extra == {}, (model.__name__, parsed.model_extra)
    assert Generation.model_validate(done).succeeded
