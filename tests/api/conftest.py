"""Fixtures for the API layer tests (helpers live in ``rivya_api_support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
from rivya_api_support import API_KEY, BASE_URL, FakeTime, Harness

from rivya_provider.api.config import ClientConfig


@pytest.fixture(autouse=True)
def _forget_learned_durations() -> Iterator[None]:
    """Each test starts from the shared poll schedule (nothing learned by an earlier test)."""
    from rivya_provider.api.polling import durations

    durations.clear()
    yield
    durations.clear()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def config() -> ClientConfig:
    """No request budget: these tests count the retry policy's sleeps; the budget's own sleeps
    are tested (and switched on) in ``test_api_ratelimit.py``."""
    return ClientConfig(api_key=API_KEY, base_url=BASE_URL, max_requests_per_second=None)


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, config: ClientConfig, fake_time: FakeTime) -> Harness:
    """The same test body runs against RivyaClient and AsyncRivyaClient."""
    return Harness(mode=request.param, config=config, time=fake_time)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock
