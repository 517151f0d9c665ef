"""Paying once (``api.idempotency``): keys, replay detection, the resubmission series, reattach.

The series is driven through both clients over mocked HTTP; the last test runs it against the
emulator over loopback and reads the ledger.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx
from rivya_api_support import Harness, generation

from rivya_provider.api.client import RivyaClient
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.idempotency import (
    EARLIER_ATTEMPT_MARGIN,
    MAX_RESUBMISSIONS,
    client_request_id_for,
    derive_idempotency_key,
    is_earlier_attempt,
    parse_timestamp,
    resubmission_key,
)
from rivya_provider.api.models import (
    MAX_CLIENT_REQUEST_ID,
    CreateResult,
    Generation,
    GenerationRequest,
)
from rivya_provider.api.polling import PollSchedule

if TYPE_CHECKING:
    from rivya_provider.testing.emulator_process import RivyaEmulator

REQUEST = GenerationRequest(model="qwen-image", prompt="again")


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


class HeaderlessApi:
    """Answers creates by the key's round, never flagging replays (an API without the header)."""

    def __init__(self, router: respx.MockRouter, answers: dict[int, dict[str, Any]]) -> None:
        self.keys: list[str] = []
        self.answers = answers
        router.post("/api/v1/generations").mock(side_effect=self.create)

    def create(self, request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        self.keys.append(key)
        match = re.search(r"-r(\d+)$", key)
        return httpx.Response(202, json=self.answers[int(match.group(1)) if match else 0])


def _failed(generation_id: str, created: float) -> dict[str, Any]:
    error = {"code": "generation_failed", "message": "x"}
    return generation(id=generation_id, status="failed", created_at=_stamp(created), error=error)


def test_an_earlier_failed_generation_is_a_replay_and_is_resubmitted(
    api: Harness, router: respx.MockRouter
) -> None:
    earlier = api.time.now - 600  # an earlier try, ten minutes ago
    fresh = generation(id="task_new", created_at=_stamp(api.time.now))
    server = HeaderlessApi(router, {0: _failed("task_old", earlier), 1: fresh})
    submission = api("submit_generation", REQUEST, "base")
    assert submission.generation.id == "task_new"
    assert (submission.round, submission.key) == (1, "base-r1")
    assert server.keys == ["base", "base-r1"]
    assert submission.record() == {"generation_id": "task_new", "base_key": "base", "round": 1}


def test_a_replay_header_marks_a_failed_generation_as_earlier_even_when_just_created(
    api: Harness, router: respx.MockRouter
) -> None:
    keys: list[str] = []

    def create(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            failed = _failed("task_old", api.time.now)
            return httpx.Response(200, json=failed, headers={"Idempotent-Replayed": "true"})
        return httpx.Response(202, json=generation(id="task_new"))

    router.post("/api/v1/generations").mock(side_effect=create)
    assert api("submit_generation", REQUEST, "base").generation.id == "task_new"
    assert keys == ["base", "base-r1"]


def test_a_failure_of_this_call_is_not_resubmitted(api: Harness, router: respx.MockRouter) -> None:
    server = HeaderlessApi(router, {0: _failed("task_now", api.time.now)})
    submission = api("submit_generation", REQUEST, "base")
    assert submission.generation.failed
    assert server.keys == ["base"]


def test_resubmissions_are_bounded(api: Harness, router: respx.MockRouter) -> None:
    earlier = api.time.now - 600
    server = HeaderlessApi(router, {n: _failed(f"task_{n}", earlier) for n in range(100)})
    submission = api("submit_generation", REQUEST, "base")
    assert submission.generation.failed
    assert len(server.keys) == 1 + MAX_RESUBMISSIONS


def test_a_previous_record_reattaches_with_one_get_and_no_create(
    api: Harness, router: respx.MockRouter
) -> None:
    create = router.post("/api/v1/generations").respond(202, json=generation(id="task_x"))
    status = router.get("/api/v1/generations/task_7").respond(
        200, json=generation(id="task_7", status="processing")
    )
    previous = {"generation_id": "task_7", "base_key": "base", "round": 2}
    submission = api("submit_generation", REQUEST, "base", previous=previous)
    assert submission.reattached
    assert (submission.generation.id, submission.round) == ("task_7", 2)
    assert (status.call_count, create.call_count) == (1, 0)


def test_a_previous_failed_generation_continues_the_series_after_it(
    api: Harness, router: respx.MockRouter
) -> None:
    router.get("/api/v1/generations/task_7").respond(200, json=_failed("task_7", api.time.now))
    server = HeaderlessApi(router, {3: generation(id="task_8")})
    previous = {"generation_id": "task_7", "base_key": "base", "round": 2}
    submission = api("submit_generation", REQUEST, "base", previous=previous)
    assert (submission.generation.id, submission.round, submission.reattached) == (
        "task_8",
        3,
        False,
    )
    assert server.keys == ["base-r3"]


@pytest.mark.parametrize(
    "previous",
    [
        {"generation_id": "task_7", "base_key": "another-body", "round": 0},
        {"generation_id": "", "base_key": "base"},
        {"base_key": "base"},
        "not a record",
        None,
    ],
)
def test_a_record_of_other_work_or_a_broken_one_is_ignored(
    api: Harness, router: respx.MockRouter, previous: Any
) -> None:
    status = router.get(url__regex=r"/api/v1/generations/.+").respond(200, json=generation())
    server = HeaderlessApi(router, {0: generation(id="task_1")})
    assert api("submit_generation", REQUEST, "base", previous=previous).round == 0
    assert (status.call_count, server.keys) == (0, ["base"])


def test_keys_are_stable_and_separate_work_apart() -> None:
    key = derive_idempotency_key("dag/task/run/-1", REQUEST.body_sha256())
    assert key == derive_idempotency_key("dag/task/run/-1", REQUEST.body_sha256())
    other_body = GenerationRequest(model="qwen-image", prompt="other").body_sha256()
    assert key != derive_idempotency_key("dag/task/run/-1", other_body)
    assert key != derive_idempotency_key("dag/task/run/0", REQUEST.body_sha256())
    assert re.fullmatch(r"airflow-rivya-[0-9a-f]{40}", key)
    assert [resubmission_key(key, n) for n in (0, 2)] == [key, f"{key}-r2"]


def test_client_request_ids_fit_the_api_limit_and_stay_distinct() -> None:
    assert client_request_id_for("dag/task/run/-1") == "airflow:dag/task/run/-1"
    long_a, long_b = (client_request_id_for("d" * 300 + tail) for tail in ("a", "b"))
    assert len(long_a) == len(long_b) == MAX_CLIENT_REQUEST_ID
    assert long_a != long_b


def test_submitting_twice_against_the_emulator_pays_once(rivya_emulator: RivyaEmulator) -> None:
    config = ClientConfig(api_key=rivya_emulator.api_key, base_url=rivya_emulator.base_url)
    key = derive_idempotency_key(f"test/{time.time()}", REQUEST.body_sha256())
    with RivyaClient(config) as client:
        first = client.submit_generation(REQUEST, key)
        again = client.submit_generation(REQUEST, key)
        reattached = client.submit_generation(REQUEST, key, previous=first.record())
        quick = PollSchedule(first_delay=0.1, interval=0.2, max_interval=0.5)
        client.wait_for_generation(first.generation.id, time.time() + 30, poll=quick)
    assert again.replayed
    assert again.generation.id == first.generation.id
    assert reattached.reattached
    assert reattached.generation.id == first.generation.id
    posts = [r for r in rivya_emulator.requests() if r["method"] == "POST"]
    assert len(posts) == 2  # the reattach sent a GET only
    assert rivya_emulator.charges_by_generation() == {first.generation.id: 4}


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-05-11T00:00:00.000Z", 1778457600.0),
        ("2026-05-11T00:00:00Z", 1778457600.0),
        ("2026-05-11T02:00:00+02:00", 1778457600.0),
        ("2026-05-11T00:00:00", 1778457600.0),  # no offset: the API's clock is UTC
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_api_timestamps_read_as_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch, text: str | None, epoch: float | None
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_timestamp(text) == epoch
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_generation_created_exactly_at_the_margin_is_not_an_earlier_attempt() -> None:
    started = 1_800_000_000.0
    at_margin = Generation.model_validate(
        {"id": "g", "status": "failed", "created_at": _stamp(started - EARLIER_ATTEMPT_MARGIN)}
    )
    just_before = at_margin.model_copy(
        update={"created_at": _stamp(started - EARLIER_ATTEMPT_MARGIN - 1)}
    )
    assert not is_earlier_attempt(CreateResult(at_margin), started)
    assert is_earlier_attempt(CreateResult(just_before), started)
    assert is_earlier_attempt(CreateResult(at_margin, replayed=True), started)


QUICK_POLL = PollSchedule(first_delay=0.1, interval=0.2, max_interval=0.5)


def _with_reference(url: str, sha256: str | None) -> GenerationRequest:
    item: dict[str, Any] = {"url": url, "kind": "image"}
    if sha256:
        item["sha256"] = sha256
    return GenerationRequest(model="qwen-image", prompt="p", params={"referenceMediaItems": [item]})


def test_a_reference_with_a_digest_counts_by_its_content_not_its_url() -> None:
    digest = hashlib.sha256(b"the same bytes").hexdigest()
    first = _with_reference("https://cdn.example/a.png", digest)
    reupload = _with_reference("https://cdn.example/b.png", digest)
    other_bytes = _with_reference("https://cdn.example/b.png", "0" * 64)
    assert first.content_sha256() == reupload.content_sha256()
    assert first.body_sha256() != reupload.body_sha256()  # the wire body does differ
    assert reupload.content_sha256() != other_bytes.content_sha256()
    assert "sha256" not in json.dumps(first.to_api())  # never sent
    no_digest = _with_reference("https://cdn.example/a.png", None)
    assert no_digest.content_sha256() == no_digest.body_sha256()


def test_the_same_work_with_another_body_gets_its_own_series_and_replays_in_it(
    rivya_emulator: RivyaEmulator,
) -> None:
    """Without a record, the API holds the key with the first body (409): the second body gets
    its own series (paid once more, with a warning), and asking again replays that one."""
    digest = hashlib.sha256(b"ref").hexdigest()
    base = f"reupload-{time.time()}"
    config = ClientConfig(api_key=rivya_emulator.api_key, base_url=rivya_emulator.base_url)
    with RivyaClient(config) as client:
        first = client.submit_generation(_with_reference("http://127.0.0.1/a.png", digest), base)
        second = client.submit_generation(_with_reference("http://127.0.0.1/b.png", digest), base)
        again = client.submit_generation(_with_reference("http://127.0.0.1/b.png", digest), base)
    assert first.series is None
    assert first.key == base
    assert second.series is not None
    assert second.key == second.series != base
    assert second.generation.id != first.generation.id
    assert again.generation.id == second.generation.id
    assert again.replayed
    with RivyaClient(config) as client:
        for generation_id in (first.generation.id, second.generation.id):
            client.wait_for_generation(generation_id, time.time() + 30, poll=QUICK_POLL)
    assert set(rivya_emulator.charges_by_generation()) == {
        first.generation.id,
        second.generation.id,
    }
