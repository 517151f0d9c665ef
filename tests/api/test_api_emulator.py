"""Both clients against the bundled emulator: submit, replay, wait, download, upload."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from typing import TYPE_CHECKING, Any

import pytest

from rivya_provider.api.client import AsyncRivyaClient, RivyaClient
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.errors import AuthenticationError
from rivya_provider.api.models import GenerationRequest
from rivya_provider.api.polling import PollSchedule

if TYPE_CHECKING:
    from rivya_provider.testing.emulator_process import RivyaEmulator

QUICK = PollSchedule(first_delay=0.1, interval=0.2, max_interval=0.5)


def _round_trip(client: RivyaClient) -> dict[str, Any]:
    request = GenerationRequest(model="qwen-image", prompt="a lighthouse at dusk")
    created = client.create_generation(request, "contract-key-1")
    replay = client.create_generation(request, "contract-key-1")
    statuses: list[str] = []
    done = client.wait_for_generation(
        created.generation.id, time.time() + 30, lambda g: statuses.append(g.status)
    )
    assert done.result is not None
    assert done.result.primary_url is not None
    sink = io.BytesIO()
    downloaded = client.download(done.result.primary_url, sink, max_bytes=10_000_000)
    uploaded = client.upload_file(io.BytesIO(sink.getvalue()), "image", "qwen-image", "ref.png")
    return {
        "created": created,
        "replay": replay,
        "statuses": statuses,
        "done": done,
        "bytes": sink.getvalue(),
        "downloaded": downloaded,
        "uploaded": uploaded,
    }


async def _async_round_trip(client: AsyncRivyaClient) -> dict[str, Any]:
    request = GenerationRequest(model="qwen-image", prompt="a lighthouse at dusk")
    created = await client.create_generation(request, "contract-key-1")
    replay = await client.create_generation(request, "contract-key-1")
    statuses: list[str] = []
    done = await client.wait_for_generation(
        created.generation.id, time.time() + 30, lambda g: statuses.append(g.status)
    )
    assert done.result is not None
    assert done.result.primary_url is not None
    sink = io.BytesIO()
    downloaded = await client.download(done.result.primary_url, sink, max_bytes=10_000_000)
    uploaded = await client.upload_file(
        io.BytesIO(sink.getvalue()), "image", "qwen-image", "ref.png"
    )
    return {
        "created": created,
        "replay": replay,
        "statuses": statuses,
        "done": done,
        "bytes": sink.getvalue(),
        "downloaded": downloaded,
        "uploaded": uploaded,
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_contract_round_trip(rivya_emulator: RivyaEmulator, mode: str) -> None:
    config = ClientConfig(
        api_key=rivya_emulator.api_key, base_url=rivya_emulator.base_url, poll=QUICK
    )
    if mode == "sync":
        with RivyaClient(config) as client:
            out = _round_trip(client)
    else:

        async def run() -> dict[str, Any]:
            async with AsyncRivyaClient(config) as client:
                return await _async_round_trip(client)

        out = asyncio.run(run())

    created, replay, done = out["created"], out["replay"], out["done"]
    assert not created.replayed
    assert replay.replayed
    assert replay.generation.id == created.generation.id
    assert done.succeeded
    assert out["statuses"][-1] == "succeeded"
    assert len(out["statuses"]) == len(set(out["statuses"]))
    assert rivya_emulator.charges_by_generation() == {done.id: 4}  # replay did not pay twice
    assert out["downloaded"].sha256 == hashlib.sha256(out["bytes"]).hexdigest()
    assert out["downloaded"].content_type == "image/png"
    assert out["uploaded"].mime_type == "image/png"
    assert out["uploaded"].as_reference().kind == "image"

    media = rivya_emulator.requests("/media/")
    api_calls = rivya_emulator.requests("/api/v1/generations")
    assert media
    assert all("authorization" not in entry["headers_present"] for entry in media)
    assert all("authorization" in entry["headers_present"] for entry in api_calls)
    keys = {g["idempotency_key"] for g in rivya_emulator.generations() if "idempotency_key" in g}
    assert keys <= {"contract-key-1"}


def test_wrong_key_is_an_authentication_error(rivya_emulator: RivyaEmulator) -> None:
    config = ClientConfig(api_key="rvya_sk_not_a_key", base_url=rivya_emulator.base_url)
    with RivyaClient(config) as client, pytest.raises(AuthenticationError) as caught:
        client.get_credits()
    assert caught.value.code == "api_key_invalid"
    assert caught.value.request_id
    assert "rvya_sk_not_a_key" not in str(caught.value)


def test_transient_fault_is_ridden_out(rivya_emulator: RivyaEmulator) -> None:
    rivya_emulator.inject_fault("/api/v1/credits", status=503, retry_after=0, count=2)
    config = ClientConfig(api_key=rivya_emulator.api_key, base_url=rivya_emulator.base_url)
    with RivyaClient(config) as client:
        assert client.get_credits().current_credits == 1000
    statuses = [entry["status"] for entry in rivya_emulator.requests("/api/v1/credits")]
    assert statuses == [503, 503, 200]
