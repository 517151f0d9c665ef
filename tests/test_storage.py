"""[hardening] Storing images: names are injective, only real images are stored, an interrupted
earlier try leaves nothing behind, and a success without results is never green."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.api.errors import RivyaError
from rivya_provider.api.models import DownloadResult, Generation
from rivya_provider.storage import as_storage_path, output_stem, remove_stale_parts, store_images

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 100
HTML = b"<!doctype html><html><body>Bad gateway</body></html>"
LOG = logging.getLogger("test.storage")


class FakeClient:
    """Serves each URL's bodies in turn (the last one repeats)."""

    def __init__(self, bodies: dict[str, list[tuple[bytes, str]]]) -> None:
        self.bodies = bodies
        self.downloads: list[str] = []

    def download(self, url: str, sink: Any, max_bytes: int) -> DownloadResult:
        self.downloads.append(url)
        queue = self.bodies[url]
        body, content_type = queue.pop(0) if len(queue) > 1 else queue[0]
        sink.write(body)
        return DownloadResult(
            size_bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            content_type=content_type,
            head=body[:64],
        )


def _generation(generation_id: str, *urls: str) -> Generation:
    result = {"primary_url": urls[0], "urls": list(urls)} if urls else None
    return Generation.model_validate({"id": generation_id, "status": "succeeded", "result": result})


def test_ids_that_clean_to_the_same_name_get_two_files(tmp_path: Path) -> None:
    client = FakeClient({"u1": [(PNG, "image/png")], "u2": [(JPEG, "image/jpeg")]})
    first = store_images(client, _generation("job.1", "u1"), str(tmp_path), "png", LOG)  # type: ignore[arg-type]
    second = store_images(client, _generation("job_1", "u2"), str(tmp_path), None, LOG)  # type: ignore[arg-type]
    assert first[0]["path"] != second[0]["path"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{output_stem('job.1')}_0.png", "job_1_0.jpg"]
    )
    assert (tmp_path / "job_1_0.jpg").read_bytes() == JPEG


@pytest.mark.parametrize(
    "generation_id", ["job.1", "job_1", "../../etc/passwd", "a/b", "é", "x" * 200, ".hidden"]
)
def test_stems_are_plain_file_names(generation_id: str) -> None:
    stem = output_stem(generation_id)
    assert "/" not in stem
    assert not stem.startswith(".")
    assert ".." not in stem
    assert len(stem) <= 96


def test_distinct_ids_never_share_a_stem() -> None:
    ids = ["job.1", "job_1", "job-1", "job 1", "job/1", "job:1", "JOB_1", "x" * 97, "x" * 98]
    assert len({output_stem(i) for i in ids}) == len(ids)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(HTML, "text/html"), (HTML, "image/png"), (b"", "image/png"), (JPEG, "image/png")],
    ids=["html", "html-labelled-png", "empty", "jpeg-labelled-png"],
)
def test_what_is_not_the_expected_image_is_never_stored(
    tmp_path: Path, body: bytes, content_type: str
) -> None:
    client = FakeClient({"u": [(body, content_type)]})
    with pytest.raises(RivyaError) as caught:
        store_images(client, _generation("task_1", "u"), str(tmp_path), "png", LOG)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.retryable) == ("invalid_image", True)
    assert len(client.downloads) == 3  # downloaded again twice, then refused
    assert list(tmp_path.iterdir()) == []


def test_a_bad_download_then_a_good_one_stores_the_good_one(tmp_path: Path) -> None:
    client = FakeClient({"u": [(HTML, "text/html"), (PNG, "image/png")]})
    images = store_images(client, _generation("task_1", "u"), str(tmp_path), "png", LOG)  # type: ignore[arg-type]
    assert Path(images[0]["path"].removeprefix("file://")).read_bytes() == PNG
    assert images[0]["content_type"] == "image/png"
    assert [p.name for p in tmp_path.iterdir()] == ["task_1_0.png"]


def test_parts_left_by_an_interrupted_try_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".task_1_0.0123abcd.part").write_bytes(b"half")
    (tmp_path / ".other_0.0123abcd.part").write_bytes(b"not ours")
    client = FakeClient({"u": [(PNG, "image/png")]})
    store_images(client, _generation("task_1", "u"), str(tmp_path), "png", LOG)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other_0.0123abcd.part", "task_1_0.png"]


def test_stale_parts_of_many_names_go_in_one_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (".sku-1_0.aa.part", ".sku-1_12.bb.part", ".sku-10_0.cc.part", ".a_b_0.dd.part"):
        (tmp_path / name).write_bytes(b"half")
    (tmp_path / "sku-1_0.png").write_bytes(PNG)
    folder = as_storage_path(str(tmp_path))
    listings: list[str] = []
    original = type(folder).glob

    def counting_glob(self: Any, pattern: str) -> Any:
        listings.append(pattern)
        return original(self, pattern)

    monkeypatch.setattr(type(folder), "glob", counting_glob)
    remove_stale_parts(folder, ["sku-1", "a_b", "missing"], LOG)
    assert len(listings) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sku-10_0.cc.part", "sku-1_0.png"]


def test_a_local_file_records_the_host_that_wrote_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Airflow names hosts with [core] hostname_callable; a fleet's workers differ here.
    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", "tests.test_storage._worker_name")
    client = FakeClient({"u": [(PNG, "image/png")]})
    images = store_images(client, _generation("task_1", "u"), str(tmp_path), "png", LOG)  # type: ignore[arg-type]
    assert images[0]["host"] == "worker-7.example"
    assert store_images(client, _generation("task_2", "u"), None, "png", LOG)[0]["host"] is None  # type: ignore[arg-type]


def _worker_name() -> str:
    return "worker-7.example"
