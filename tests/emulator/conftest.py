"""Helpers for the emulator tests: an authenticated HTTP client on the session emulator."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rivya_provider.testing.emulator_process import RivyaEmulator


class Api:
    """A client of the emulator's public API, with the handle for its controls."""

    def __init__(self, emulator: RivyaEmulator) -> None:
        self.emulator = emulator
        self.http = httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {emulator.api_key}"},
            timeout=10.0,
        )

    def create(
        self, body: dict[str, Any] | None = None, *, key: str | None = None, **headers: str
    ) -> httpx.Response:
        """POST a generation (default: a small qwen-image)."""
        if body is None:
            body = {"model": "qwen-image", "prompt": "a lighthouse at dusk"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.post("/api/v1/generations", json=body, headers=headers)

    def get(self, generation_id: str, *, key: str | None = None) -> httpx.Response:
        """GET a generation."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.http.get(f"/api/v1/generations/{generation_id}", headers=headers)

    def wait(self, generation_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll until terminal; returns the task object."""
        deadline = time.monotonic() + timeout
        while True:
            task: dict[str, Any] = self.get(generation_id).json()
            if task["status"] in ("succeeded", "failed"):
                return task
            assert time.monotonic() < deadline, f"still {task['status']}"
            time.sleep(0.05)

    def credits(self) -> int:
        """The documented balance endpoint."""
        return int(self.http.get("/api/v1/credits").json()["current_credits"])

    def upload(
        self,
        data: bytes,
        *,
        kind: str = "image",
        filename: str = "ref.png",
        content_type: str = "application/octet-stream",
        **fields: str,
    ) -> httpx.Response:
        """POST a multipart file upload."""
        files = {"file": (filename, io.BytesIO(data), content_type)}
        return self.http.post("/api/v1/files", data={"kind": kind, **fields}, files=files)

    @staticmethod
    def png(colour: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> bytes:
        """A solid PNG."""
        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", size, colour).save(out, format="PNG")
        return out.getvalue()

    @staticmethod
    def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
        """The response is Rivya's error envelope with this status and code."""
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"error"}
        error = body["error"]
        assert set(error) == {"code", "message", "requestId"}
        assert error["code"] == code
        assert isinstance(error["message"], str)
        assert error["message"]
        assert error["requestId"].startswith("req_")
        assert response.headers["x-request-id"] == error["requestId"]
        return error


@pytest.fixture
def api(rivya_emulator: RivyaEmulator) -> Iterator[Api]:
    """A client on a freshly reset emulator with a short latency."""
    rivya_emulator.configure(latency=0.2)
    client = Api(rivya_emulator)
    yield client
    client.http.close()
