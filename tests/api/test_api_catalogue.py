"""The model catalogue helper: one fetch per TTL shared across processes, price, callability."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from rivya_api_support import FakeTime

from rivya_provider.api.catalogue import ModelCatalogue, ModelInfo
from rivya_provider.api.errors import TransportError

QWEN = {"id": "qwen-image", "base_credits": 4, "billing_type": "FIXED", "api_status": "available"}
SOON = {"id": "flux-dev", "base_credits": 6, "billing_type": "FIXED", "api_status": "coming_soon"}


class Fetcher:
    def __init__(self, *entries: dict[str, object]) -> None:
        self.models = [ModelInfo.model_validate(entry) for entry in entries]
        self.calls = 0

    def __call__(self) -> list[ModelInfo]:
        self.calls += 1
        return self.models


@pytest.fixture(autouse=True)
def fresh_process_cache() -> Iterator[None]:
    ModelCatalogue._memory.clear()
    ModelCatalogue._warned.clear()
    yield
    ModelCatalogue._memory.clear()
    ModelCatalogue._warned.clear()


def _catalogue(tmp_path: Path, time: FakeTime) -> ModelCatalogue:
    return ModelCatalogue("https://rivya.test", cache_dir=tmp_path, clock=time.clock)


def test_one_fetch_per_ttl_in_a_process_and_across_processes(tmp_path: Path) -> None:
    time, fetch = FakeTime(), Fetcher(QWEN)
    assert _catalogue(tmp_path, time).status("qwen-image", fetch).callable
    assert _catalogue(tmp_path, time).status("qwen-image", fetch).info is not None
    assert fetch.calls == 1
    ModelCatalogue._memory.clear()  # a new task process on the same host reads the file
    assert _catalogue(tmp_path, time).status("qwen-image", fetch).reachable
    assert fetch.calls == 1
    time.sleep(301)
    _catalogue(tmp_path, time).status("qwen-image", fetch)
    assert fetch.calls == 2


def test_a_coming_soon_model_is_not_callable_and_is_priced_from_the_catalogue(
    tmp_path: Path,
) -> None:
    status = _catalogue(tmp_path, FakeTime()).status("flux-dev", Fetcher(QWEN, SOON))
    assert (status.callable, status.api_status) == (False, "coming_soon")
    assert status.credits_per_generation() == (6, "catalogue")


def test_an_unreachable_catalogue_falls_back_to_the_local_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def down() -> list[ModelInfo]:
        raise TransportError("ConnectError during GET /api/v1/models", retryable=True)

    with caplog.at_level(logging.WARNING, logger="rivya_provider.api"):
        status = _catalogue(tmp_path, FakeTime()).status("qwen-image", down)
    assert (status.reachable, status.callable) == (False, True)
    assert status.credits_per_generation() == (4, "local")
    assert "unreachable" in caplog.text
    assert _catalogue(tmp_path, FakeTime()).status("nope", down).credits_per_generation() == (
        None,
        "none",
    )


def test_a_disagreement_with_the_local_rules_is_warned_once_naming_both_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fetch = Fetcher({**QWEN, "base_credits": 5, "max_prompt_length": 4000})
    with caplog.at_level(logging.WARNING, logger="rivya_provider.api"):
        for _ in range(3):
            _catalogue(tmp_path, FakeTime()).status("qwen-image", fetch)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "base_credits=5, the local rules say 4" in warnings[0]
    assert "max_prompt_length=4000, the local rules say 5000" in warnings[1]


def test_a_broken_cache_file_is_ignored(tmp_path: Path) -> None:
    catalogue = _catalogue(tmp_path, FakeTime())
    assert catalogue.cache_file is not None
    catalogue.cache_file.write_text("{not json")
    fetch = Fetcher(QWEN)
    assert catalogue.status("qwen-image", fetch).callable
    assert fetch.calls == 1
