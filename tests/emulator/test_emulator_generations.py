"""Generations over real HTTP: the issue's black box, lifecycle, credits ledger, idempotency."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
from PIL import Image

QWEN_HD_PNG = {
    "model": "qwen-image",
    "prompt": "a red fox in fresh snow",
    "params": {"image_size": "square_hd", "output_format": "png"},
}


def test_acceptance_black_box(api) -> None:
    assert api.credits() == 1000
    created = api.create(QWEN_HD_PNG, **{"Idempotency-Key": "run-1"})
    assert created.status_code == 202
    task = created.json()
    assert task["id"].startswith("task_")
    assert task["status"] == "queued"
    assert (task["reserved_credits"], task["final_credits"]) == (4, 0)

    done = api.wait(task["id"])
    assert done["status"] == "succeeded"
    assert done["final_credits"] == 4
    assert done["result"]["primary_url"] == done["result"]["urls"][0]
    image = httpx.get(done["result"]["primary_url"])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(image.content)) as png:
        png.verify()
    with Image.open(io.BytesIO(image.content)) as png:
        assert (png.format, png.size) == ("PNG", (1024, 1024))
    assert api.credits() == 996

    replay = api.create(QWEN_HD_PNG, **{"Idempotency-Key": "run-1"})
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == task["id"]
    assert replay.json()["status"] == "succeeded"
    assert api.credits() == 996

    other_body = {**QWEN_HD_PNG, "prompt": "a grey wolf"}
    api.assert_error(
        api.create(other_body, **{"Idempotency-Key": "run-1"}), 409, "idempotency_conflict"
    )

    anonymous = httpx.post(f"{api.emulator.base_url}/api/v1/generations", json=QWEN_HD_PNG)
    api.assert_error(anonymous, 401, "api_key_missing")

    too_long = api.create({"model": "qwen-image", "prompt": "x" * 5001})
    api.assert_error(too_long, 400, "validation_failed")
    assert api.credits() == 996
    ledger = api.emulator.ledger()
    assert [e["type"] for e in ledger["entries"]] == ["reserve", "charge"]
    assert api.emulator.charges_by_generation() == {task["id"]: 4}


def test_prompt_of_exactly_5000_characters_is_accepted(api) -> None:
    assert api.create({"model": "qwen-image", "prompt": "y" * 5000}).status_code == 202


def test_status_follows_the_latency(api) -> None:
    api.emulator.configure(latency=1.5)
    task = api.create().json()
    started = time.monotonic()
    assert task["status"] == "queued"
    assert task["result"] is None
    assert task["error"] is None
    time.sleep(max(0.0, started + 0.6 - time.monotonic()))
    middle = api.get(task["id"]).json()
    assert middle["status"] == "processing"
    assert middle["final_credits"] == 0
    assert middle["updated_at"] > middle["created_at"]
    time.sleep(max(0.0, started + 1.6 - time.monotonic()))
    done = api.get(task["id"]).json()
    assert done["status"] == "succeeded"
    assert done["final_credits"] == 4
    assert done["updated_at"] > middle["updated_at"]


def test_latency_zero_is_terminal_at_creation(api) -> None:
    api.emulator.configure(latency=0)
    task = api.create().json()
    assert task["status"] == "succeeded"
    assert task["final_credits"] == 4


def test_fail_marker_fails_and_refunds_exactly_once(api) -> None:
    task = api.create({"model": "qwen-image", "prompt": "please [[fail]] now"}).json()
    done = api.wait(task["id"])
    assert done["status"] == "failed"
    assert done["result"] is None
    assert done["final_credits"] == 0
    assert done["reserved_credits"] == 4
    assert done["error"]["code"] == "generation_failed"
    assert done["error"]["message"]
    for _ in range(3):
        assert api.get(task["id"]).json()["status"] == "failed"
    entries = api.emulator.ledger()["entries"]
    assert [(e["type"], e["credits"]) for e in entries] == [("reserve", 4), ("refund", 4)]
    assert api.credits() == 1000
    assert api.emulator.charges_by_generation() == {}


def test_fail_next_fails_only_the_next_creations(api) -> None:
    api.emulator.configure(fail_next=1)
    first = api.create().json()["id"]
    second = api.create().json()["id"]
    assert api.wait(first)["status"] == "failed"
    assert api.wait(second)["status"] == "succeeded"


def test_ledger_settles_on_read_without_any_poll(api) -> None:
    api.emulator.configure(latency=0.1)
    good = api.create().json()["id"]
    bad = api.create({"model": "qwen-image", "prompt": "[[fail]]"}).json()["id"]
    time.sleep(0.2)
    ledger = api.emulator.ledger()
    assert ledger["balance"] == 996
    kinds = {(e["generation_id"], e["type"]) for e in ledger["entries"]}
    assert kinds == {(good, "reserve"), (good, "charge"), (bad, "reserve"), (bad, "refund")}


def test_insufficient_credits_is_402_and_reserves_nothing(api) -> None:
    api.emulator.configure(credits=3)
    api.assert_error(api.create(), 402, "insufficient_credits")
    assert api.emulator.ledger() == {"balance": 3, "entries": []}


async def test_concurrent_creates_never_overdraw(api) -> None:
    api.emulator.configure(credits=10, latency=30)
    headers = {"Authorization": f"Bearer {api.emulator.api_key}"}
    body = {"model": "qwen-image", "prompt": "concurrent"}
    async with httpx.AsyncClient(base_url=api.emulator.base_url, headers=headers) as client:
        responses = await asyncio.gather(
            *(client.post("/api/v1/generations", json=body) for _ in range(20))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * 2 + [402] * 18
    assert all(
        r.json()["error"]["code"] == "insufficient_credits"
        for r in responses
        if r.status_code == 402
    )
    ledger = api.emulator.ledger()
    assert ledger["balance"] == 2
    assert [e["type"] for e in ledger["entries"]] == ["reserve", "reserve"]
    assert min(e["balance_after"] for e in ledger["entries"]) >= 0


def test_idempotency_keys_are_per_api_key(api) -> None:
    api.emulator.add_key("rvya_sk_second")
    first = api.create(QWEN_HD_PNG, **{"Idempotency-Key": "shared"}).json()["id"]
    second = api.create(QWEN_HD_PNG, key="rvya_sk_second", **{"Idempotency-Key": "shared"})
    assert second.status_code == 202
    assert second.json()["id"] != first


def test_body_key_order_does_not_defeat_replay(api) -> None:
    body = {"prompt": "order", "params": {"output_format": "jpeg", "image_size": "square"}}
    first = api.create({"model": "qwen-image", **body}, **{"Idempotency-Key": "k"}).json()
    reordered = {"params": {"image_size": "square", "output_format": "jpeg"}, "prompt": "order"}
    replay = api.create({**reordered, "model": "qwen-image"}, **{"Idempotency-Key": "k"})
    assert replay.status_code == 200
    assert replay.json()["id"] == first["id"]


def test_other_model_has_its_own_params_and_price(api) -> None:
    models = {
        m["id"]: m for m in httpx.get(f"{api.emulator.base_url}/api/v1/models").json()["data"]
    }
    qwen = models["qwen-image"]
    assert (qwen["category"], qwen["billing_type"], qwen["base_credits"]) == ("image", "FIXED", 4)
    assert qwen["max_prompt_length"] == 5000
    assert {p["name"] for p in qwen["params"]} == {"image_size", "output_format"}
    assert qwen["reference_media"]["kinds"] == ["image"]
    others = [
        m for m in models.values() if m["id"] != "qwen-image" and m["api_status"] == "available"
    ]
    assert others
    other = others[0]
    assert other["category"] == "image"
    assert other["base_credits"] != 4
    assert "aspect_ratio" in {p["name"] for p in other["params"]}
    assert not {p["name"] for p in other["params"]} & {p["name"] for p in qwen["params"]}

    body = {"model": other["id"], "prompt": "wide", "params": {"aspect_ratio": "16:9", "seed": 7}}
    task = api.create(body).json()
    done = api.wait(task["id"])
    assert done["status"] == "succeeded"
    assert done["final_credits"] == other["base_credits"]
    assert api.credits() == 1000 - other["base_credits"]
    with Image.open(io.BytesIO(httpx.get(done["result"]["primary_url"]).content)) as image:
        assert image.width > image.height

    bad = api.create({"model": "qwen-image", "prompt": "p", "params": {"aspect_ratio": "16:9"}})
    api.assert_error(bad, 400, "validation_failed")
