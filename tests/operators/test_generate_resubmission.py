"""Resubmission after a failed generation when the API sends no ``Idempotent-Replayed`` header."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from rivya_provider.api.models import CreateResult, Generation
from rivya_provider.operators.generate import RivyaGenerateImageOperator
from tests.operators.test_generate_validation import FakeTaskInstance


def _generation(generation_id: str, status: str, created: float) -> Generation:
    stamp = datetime.fromtimestamp(created, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    return Generation.model_validate(
        {
            "id": generation_id,
            "status": status,
            "model": "qwen-image",
            "reserved_credits": 4,
            "final_credits": 0,
            "created_at": stamp,
            "updated_at": stamp,
            "result": None,
            "error": {"code": "generation_failed", "message": "x"} if status == "failed" else None,
        }
    )


class HeaderlessApi:
    """Answers creates by key, never flagging replays (an API without the header)."""

    def __init__(self, answers: dict[int, Generation]) -> None:
        self.answers = answers
        self.keys: list[str] = []

    def create_generation(self, request: Any, idempotency_key: str) -> CreateResult:
        self.keys.append(idempotency_key)
        match = re.search(r"-r(\d+)$", idempotency_key)
        round_number = int(match.group(1)) if match else 0
        return CreateResult(generation=self.answers[round_number], replayed=False)


def _submit(api: HeaderlessApi) -> Generation:
    operator = RivyaGenerateImageOperator(task_id="generate", prompt="again")
    context: Any = {"ti": FakeTaskInstance()}
    request = operator._build_request("trace")
    return operator._submit(api, request, context)  # type: ignore[arg-type]


def test_old_failed_generation_is_taken_as_a_replay_and_resubmitted() -> None:
    earlier = time.time() - 600  # an earlier try, ten minutes ago
    api = HeaderlessApi(
        {0: _generation("task_old", "failed", earlier), 1: _generation("task_new", "queued", 0)}
    )
    assert _submit(api).id == "task_new"
    assert len(api.keys) == 2
    assert api.keys[1] == f"{api.keys[0]}-r1"


def test_fresh_failure_is_not_resubmitted_in_the_same_try() -> None:
    api = HeaderlessApi({0: _generation("task_now", "failed", time.time())})
    assert _submit(api).status == "failed"
    assert len(api.keys) == 1


def test_resubmissions_are_bounded() -> None:
    earlier = time.time() - 600
    api = HeaderlessApi({n: _generation(f"task_{n}", "failed", earlier) for n in range(100)})
    assert _submit(api).status == "failed"
    assert len(api.keys) == 21  # the first key plus MAX_RESUBMISSIONS (20) fresh ones
