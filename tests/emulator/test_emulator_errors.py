"""Every error code of RIVYA_API.md's table, with its HTTP status and the envelope."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

OK_REF = {"url": "https://cdn.example/ref.png", "kind": "image"}

INVALID_BODIES: dict[str, Any] = {
    "missing model": {"prompt": "p"},
    "unknown model": {"model": "no-such-model", "prompt": "p"},
    "missing prompt": {"model": "qwen-image"},
    "blank prompt": {"model": "qwen-image", "prompt": "   "},
    "prompt not a string": {"model": "qwen-image", "prompt": 5},
    "prompt of 5001 characters": {"model": "qwen-image", "prompt": "z" * 5001},
    "image_size outside the enum": {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"image_size": "huge"},
    },
    "output_format outside the enum": {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"output_format": "gif"},
    },
    "two references": {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"referenceMediaItems": [OK_REF, OK_REF]},
    },
    "reference of kind video": {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"referenceMediaItems": [{"url": OK_REF["url"], "kind": "video"}]},
    },
    "reference without url": {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"referenceMediaItems": [{"kind": "image"}]},
    },
    "reference without kind": {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"referenceMediaItems": [{"url": OK_REF["url"]}]},
    },
    "reference with a bad mimeType": {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"referenceMediaItems": [{**OK_REF, "mimeType": "image/gif"}]},
    },
    "references not a list": {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"referenceMediaItems": OK_REF},
    },
    "top-level files": {"model": "qwen-image", "prompt": "p", "files": [OK_REF]},
    "unknown top-level field": {"model": "qwen-image", "prompt": "p", "seed": 1},
    "params not an object": {"model": "qwen-image", "prompt": "p", "params": []},
    "unknown qwen param": {"model": "qwen-image", "prompt": "p", "params": {"seed": 1}},
    "client_request_id over 128": {
        "model": "qwen-image",
        "prompt": "p",
        "client_request_id": "c" * 129,
    },
    "body is an array": ["qwen-image"],
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=list(INVALID_BODIES))
def test_invalid_bodies_fail_validation_and_reserve_nothing(api, body: Any) -> None:
    api.assert_error(api.create(body), 400, "validation_failed")
    assert api.emulator.ledger() == {"balance": 1000, "entries": []}


def test_a_valid_reference_item_is_accepted(api) -> None:
    item = {**OK_REF, "name": "ref.png", "mimeType": "image/png"}
    body = {"model": "qwen-image", "prompt": "p", "params": {"referenceMediaItems": [item]}}
    assert api.create(body).status_code == 202


def test_malformed_json_fails_validation(api) -> None:
    response = api.http.post(
        "/api/v1/generations", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    api.assert_error(response, 400, "validation_failed")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "api_key_missing"),
        ("Basic dXNlcjpwYXNz", "api_key_missing"),
        ("Bearer", "api_key_missing"),
        ("Bearer rvya_sk_nobody", "api_key_invalid"),
        ("Bearer rvya_sk_revoked", "api_key_revoked"),
        ("Bearer rvya_sk_expired", "api_key_expired"),
    ],
)
def test_bad_keys_are_401(api, authorization: str | None, code: str) -> None:
    api.emulator.configure(
        keys={"rvya_sk_revoked": {"state": "revoked"}, "rvya_sk_expired": {"state": "expired"}}
    )
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("POST", "/api/v1/generations"), ("GET", "/api/v1/credits")]:
        response = httpx.request(
            method, f"{api.emulator.base_url}{path}", headers=headers, json={"model": "qwen-image"}
        )
        api.assert_error(response, 401, code)


def test_missing_scope_is_403(api) -> None:
    api.emulator.add_key("rvya_sk_readonly", scopes=["generations:read"])
    api.assert_error(api.create(key="rvya_sk_readonly"), 403, "api_scope_denied")
    task = api.create().json()
    assert api.get(task["id"], key="rvya_sk_readonly").status_code == 404  # read works: not hers
    credits = api.http.get("/api/v1/credits", headers={"Authorization": "Bearer rvya_sk_readonly"})
    api.assert_error(credits, 403, "api_scope_denied")


def test_models_need_no_key(api) -> None:
    response = httpx.get(f"{api.emulator.base_url}/api/v1/models")
    assert response.status_code == 200
    assert "qwen-image" in {m["id"] for m in response.json()["data"]}


def test_unknown_and_foreign_generations_are_404(api) -> None:
    api.assert_error(api.get("task_doesnotexist"), 404, "not_found")
    api.emulator.add_key("rvya_sk_other")
    task = api.create().json()
    api.assert_error(api.get(task["id"], key="rvya_sk_other"), 404, "not_found")
    assert api.get(task["id"]).status_code == 200


def test_rate_limit_answers_429_with_retry_after(api) -> None:
    api.emulator.configure(rate_limit=2, rate_limit_window=30)
    assert api.http.get("/api/v1/credits").status_code == 200
    assert api.http.get("/api/v1/credits").status_code == 200
    limited = api.http.get("/api/v1/credits")
    api.assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 30
    api.emulator.configure(rate_limit=None)
    assert api.http.get("/api/v1/credits").status_code == 200


def test_public_api_disabled_is_503_until_switched_back(api) -> None:
    api.emulator.configure(api_disabled=True)
    api.assert_error(api.create(), 503, "public_api_disabled")
    api.assert_error(api.http.get("/api/v1/models"), 503, "public_api_disabled")
    assert api.emulator.ledger()["entries"] == []
    api.emulator.configure(api_disabled=False)
    assert api.create().status_code == 202


def test_unknown_route_uses_the_envelope(api) -> None:
    api.assert_error(api.http.get("/api/v1/nothing-here"), 404, "not_found")
    api.assert_error(api.http.get("/api/v1/generations"), 405, "method_not_allowed")
