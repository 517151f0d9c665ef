"""Bad input fails before any request: the emulator sees nothing, no credit is spent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from rivya_provider.api.errors import GenerationFailedError
from rivya_provider.compat import AirflowFailException
from rivya_provider.operators.generate import RivyaGenerateImageOperator

IMAGE_ITEM = {"url": "http://127.0.0.1:1/a.png", "kind": "image", "mimeType": "image/png"}


@dataclass
class FakeTaskInstance:
    dag_id: str = "dag"
    task_id: str = "generate"
    run_id: str = "manual__2026-01-01"
    map_index: int = -1
    xcom: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"prompt": "x" * 5001}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "ok", "image_size": "huge"}, "image_size"),
        ({"prompt": "ok", "output_format": "gif"}, "output_format"),
        (
            {"prompt": "ok", "reference_media_items": [IMAGE_ITEM, IMAGE_ITEM]},
            "referenceMediaItems",
        ),
        (
            {"prompt": "ok", "reference_media_items": {**IMAGE_ITEM, "kind": "video"}},
            "kind",
        ),
        ({"prompt": "ok", "model_params": {"image_sise": "square"}}, "image_sise"),
        (
            {"prompt": "ok", "image_size": "square", "model_params": {"image_size": "square_hd"}},
            "image_size",
        ),
    ],
    ids=[
        "prompt-5001",
        "empty-prompt",
        "unknown-image-size",
        "unknown-output-format",
        "two-references",
        "video-reference",
        "unknown-param",
        "conflicting-image-size",
    ],
)
def test_bad_input_names_the_field_and_sends_nothing(
    rivya_airflow_conn: Any, kwargs: dict[str, Any], field_name: str
) -> None:
    operator = RivyaGenerateImageOperator(task_id="generate", **kwargs)
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert field_name in str(raised.value)
    assert rivya_airflow_conn.requests() == []
    assert rivya_airflow_conn.api_key not in str(raised.value)


def test_same_task_instance_and_body_derive_the_same_key_across_tries(
    rivya_airflow_conn: Any,
) -> None:
    """Two executions of one task instance (a retry) replay one generation: one charge."""
    ids = []
    for _ in range(2):
        operator = RivyaGenerateImageOperator(
            task_id="generate", prompt="same", wait_for_completion=False
        )
        ti = FakeTaskInstance()
        manifest = operator.execute({"ti": ti})  # type: ignore[arg-type]
        ids.append(manifest["generation_id"])
        assert ti.xcom["generation_id"] == manifest["generation_id"]
    assert ids[0] == ids[1]
    reserves = [e for e in rivya_airflow_conn.ledger()["entries"] if e["type"] == "reserve"]
    assert len(reserves) == 1


def test_other_map_index_or_body_is_another_generation(rivya_airflow_conn: Any) -> None:
    seen = set()
    for map_index, prompt in [(0, "a"), (1, "a"), (0, "b")]:
        operator = RivyaGenerateImageOperator(
            task_id="generate", prompt=prompt, wait_for_completion=False
        )
        manifest = operator.execute(
            {"ti": FakeTaskInstance(map_index=map_index)}  # type: ignore[arg-type]
        )
        seen.add(manifest["generation_id"])
    assert len(seen) == 3


def test_failed_replay_is_resubmitted_under_the_next_key(rivya_airflow_conn: Any) -> None:
    """A retry after a failed generation creates a fresh one (the failed one cost nothing)."""
    rivya_airflow_conn.configure(fail_next=1, latency=0)
    first = RivyaGenerateImageOperator(
        task_id="generate", prompt="retry me", deferrable=False, poll_interval=0.1
    )
    with pytest.raises(GenerationFailedError, match="failed"):
        first.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    second = RivyaGenerateImageOperator(
        task_id="generate", prompt="retry me", deferrable=False, poll_interval=0.1
    )
    manifest = second.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert manifest["status"] == "succeeded"
    types = [e["type"] for e in rivya_airflow_conn.ledger()["entries"]]
    assert types.count("reserve") == 2
    assert types.count("refund") == 1
    assert types.count("charge") == 1


def test_non_retryable_api_error_is_a_fail_exception(rivya_airflow_conn: Any) -> None:
    rivya_airflow_conn.configure(credits=0)
    operator = RivyaGenerateImageOperator(task_id="generate", prompt="no money")
    with pytest.raises(AirflowFailException, match="insufficient_credits"):
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]


def test_a_model_the_catalogue_lists_as_coming_soon_is_refused_before_the_create(
    rivya_airflow_conn: Any,
) -> None:
    operator = RivyaGenerateImageOperator(task_id="generate", model="flux-dev", prompt="soon")
    with pytest.raises(AirflowFailException, match="api_status 'coming_soon'") as raised:
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert "model: flux-dev" in str(raised.value)
    assert rivya_airflow_conn.requests(path_prefix="/api/v1/generations") == []
    assert rivya_airflow_conn.ledger()["entries"] == []


def test_an_unreachable_catalogue_costs_two_quick_attempts_then_the_generation_goes_on(
    rivya_airflow_conn: Any, tmp_path: Any
) -> None:
    """The catalogue lookup must not spend the full retry budget (5 attempts, about a minute)
    before a generation the local rules allow."""
    from rivya_provider.api.catalogue import ModelCatalogue
    from rivya_provider.api.config import QUICK_ATTEMPTS

    ModelCatalogue._memory.clear()
    cache_file = ModelCatalogue(rivya_airflow_conn.base_url).cache_file
    assert cache_file is not None
    cache_file.unlink(missing_ok=True)
    rivya_airflow_conn.inject_fault("/api/v1/models", status=503, count=10)
    operator = RivyaGenerateImageOperator(
        task_id="generate",
        prompt="catalogue down",
        deferrable=False,
        poll_interval=0.2,
        output_path=str(tmp_path),
    )
    manifest = operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert manifest["status"] == "succeeded"
    assert len(rivya_airflow_conn.requests(path_prefix="/api/v1/models")) == QUICK_ATTEMPTS


def test_default_retries_apply_unless_the_dag_author_sets_them() -> None:
    from datetime import datetime, timedelta

    from airflow.sdk import DAG

    from rivya_provider.operators.upload import RivyaFileUploadOperator

    start = datetime(2026, 1, 1)
    with DAG("rivya_retries_default", schedule=None, start_date=start):
        generate = RivyaGenerateImageOperator(task_id="generate", prompt="p")
        upload = RivyaFileUploadOperator(task_id="upload", source="/tmp/x.png")
        explicit = RivyaGenerateImageOperator(task_id="explicit", prompt="p", retries=0)
    with DAG(
        "rivya_retries_default_args",
        schedule=None,
        start_date=start,
        default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    ):
        from_default_args = RivyaGenerateImageOperator(task_id="generate", prompt="p")
    assert (generate.retries, generate.retry_delay) == (3, timedelta(seconds=10))
    assert upload.retries == 3
    assert explicit.retries == 0
    assert (from_default_args.retries, from_default_args.retry_delay) == (1, timedelta(minutes=2))


def test_a_success_without_results_is_never_green(rivya_airflow_conn: Any, tmp_path: Any) -> None:
    from rivya_provider.api.errors import RivyaError

    event = {
        "status": "succeeded",
        "generation_id": "task_1",
        "generation": {"id": "task_1", "status": "succeeded", "result": None},
    }
    operator = RivyaGenerateImageOperator(task_id="generate", prompt="p", output_path=str(tmp_path))
    with pytest.raises(RivyaError, match="lists no result") as raised:
        operator.execute_complete({"ti": FakeTaskInstance()}, event)  # type: ignore[arg-type]
    assert raised.value.retryable  # Airflow retries: the retry reattaches and asks again
    assert list(tmp_path.iterdir()) == []


def _creates(emulator: Any) -> list[dict[str, Any]]:
    return [r for r in emulator.requests("/api/v1/generations") if r["method"] == "POST"]


def test_an_estimate_over_max_credits_fails_before_any_create(rivya_airflow_conn: Any) -> None:
    operator = RivyaGenerateImageOperator(task_id="generate", prompt="p", max_credits=3)
    with pytest.raises(AirflowFailException, match="max_credits") as raised:
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert "1 x 4 = 4 credits" in str(raised.value)  # the price of qwen-image, and the cap
    assert "cap of 3" in str(raised.value)
    assert _creates(rivya_airflow_conn) == []
    assert rivya_airflow_conn.ledger()["entries"] == []


def test_check_balance_fails_up_front_when_the_balance_is_too_low(rivya_airflow_conn: Any) -> None:
    rivya_airflow_conn.configure(credits=3)
    operator = RivyaGenerateImageOperator(task_id="generate", prompt="p", check_balance=True)
    with pytest.raises(AirflowFailException, match="check_balance") as raised:
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert "balance of 3 credits" in str(raised.value)
    assert _creates(rivya_airflow_conn) == []


def test_within_budget_and_balance_the_generation_is_stored_under_its_output_name(
    rivya_airflow_conn: Any, tmp_path: Any
) -> None:
    operator = RivyaGenerateImageOperator(
        task_id="generate",
        prompt="p",
        max_credits=4,
        check_balance=True,
        output_name="sku-0042",
        deferrable=False,
        poll_interval=0.2,
        output_path=str(tmp_path),
    )
    manifest = operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
    assert [p.name for p in tmp_path.iterdir()] == ["sku-0042_0.png"]
    assert manifest["images"][0]["path"].endswith("/sku-0042_0.png")
    assert len(rivya_airflow_conn.requests("/api/v1/credits")) == 1
    assert len(_creates(rivya_airflow_conn)) == 1
