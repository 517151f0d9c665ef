"""[incremental] ``skip_unchanged``: the reuse rule (``rivya_provider.reuse``) on the generate and
batch operators, run after run into one folder, against the emulator."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.compat import AirflowFailException
from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator
from rivya_provider.operators.generate import RivyaGenerateImageOperator
from tests.operators.test_generate_validation import FakeTaskInstance

REFERENCE = {"url": "http://127.0.0.1:1/a.png", "kind": "image", "mimeType": "image/png"}


def _creates(emulator: Any) -> int:
    return sum(1 for r in emulator.requests("/api/v1/generations") if r["method"] == "POST")


def _generate(out: Path, run: str, **kwargs: Any) -> dict[str, Any]:
    arguments = {
        "prompt": "a lighthouse at dusk",
        "output_path": str(out),
        "output_name": "hero",
        "skip_unchanged": True,
        "deferrable": False,
        "poll_interval": 0.2,
        "retries": 0,
        **kwargs,
    }
    operator = RivyaGenerateImageOperator(task_id="generate", **arguments)
    result: dict[str, Any] = operator.execute({"ti": FakeTaskInstance(run_id=run)})  # type: ignore[arg-type]
    return result


def _batch(out: Path, items: list[dict[str, Any]], run: str, **kwargs: Any) -> dict[str, Any]:
    arguments = {
        "skip_unchanged": True,
        "deferrable": False,
        "poll_interval": 0.2,
        "retries": 0,
        **kwargs,
    }
    operator = RivyaBatchGenerateImagesOperator(
        task_id="batch", items=items, output_path=str(out), **arguments
    )
    result: dict[str, Any] = operator.execute({"ti": FakeTaskInstance(run_id=run)})  # type: ignore[arg-type]
    return result


def _items(count: int, prefix: str = "product") -> list[dict[str, Any]]:
    return [{"key": f"sku-{n}", "prompt": f"{prefix} {n}"} for n in range(count)]


def test_the_generate_operator_reuses_its_stored_image_on_a_new_run_without_any_request(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    first = _generate(tmp_path, "run-1")
    assert "reused" not in first
    image = Path(first["images"][0]["path"].removeprefix("file://"))
    before = image.read_bytes()

    sent = len(rivya_airflow_conn.requests())
    again = _generate(tmp_path, "run-2")
    assert len(rivya_airflow_conn.requests()) == sent  # not even a status check
    assert again["reused"] is True
    assert again["generation_id"] == first["generation_id"]
    assert again["images"][0]["sha256"] == first["images"][0]["sha256"]
    assert again["final_credits"] == first["final_credits"]
    assert image.read_bytes() == before

    changed = _generate(tmp_path, "run-3", prompt="a lighthouse at dawn")
    assert "reused" not in changed
    assert changed["generation_id"] != first["generation_id"]
    assert _creates(rivya_airflow_conn) == 2


def test_verify_sha256_catches_an_image_replaced_by_one_of_the_same_size(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    first = _generate(tmp_path, "run-1")
    image = Path(first["images"][0]["path"].removeprefix("file://"))
    tampered = bytearray(image.read_bytes())
    tampered[-20] ^= 0xFF  # same size, other bytes
    image.write_bytes(bytes(tampered))

    assert _generate(tmp_path, "run-2")["reused"] is True  # the size alone cannot tell
    rehashed = _generate(tmp_path, "run-3", verify_unchanged="sha256")
    assert "reused" not in rehashed
    assert hashlib.sha256(image.read_bytes()).hexdigest() == rehashed["images"][0]["sha256"]
    assert _creates(rivya_airflow_conn) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"output_name": None}, "skip_unchanged"),
        ({"output_path": None}, "skip_unchanged"),
        ({"verify_unchanged": "md5"}, "verify_unchanged"),
        ({"reference_media_items": REFERENCE}, "reference_media_items"),
    ],
    ids=["no-output-name", "no-output-path", "verify-md5", "reference-without-sha256"],
)
def test_skip_unchanged_is_refused_where_it_cannot_work_before_any_request(
    rivya_airflow_conn: Any, tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(AirflowFailException) as raised:
        _generate(tmp_path, "run-1", **kwargs)
    assert f"{field}:" in str(raised.value)
    assert rivya_airflow_conn.requests() == []


def test_a_reference_is_compared_by_its_bytes_not_its_url(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    """An upload's item carries the sha256 of its bytes: uploading the same file again (a new
    URL) still reuses the image; another file does not."""
    from PIL import Image

    from rivya_provider.operators.upload import RivyaFileUploadOperator

    magenta = (
        Path(__file__).resolve().parents[2] / "dags_examples" / "assets" / "reference_magenta.png"
    )
    cyan = tmp_path / "reference_cyan.png"
    Image.new("RGB", (64, 64), (0, 200, 200)).save(cyan)

    def upload(source: Path) -> dict[str, Any]:
        operator = RivyaFileUploadOperator(task_id="upload", source=str(source))
        item: dict[str, Any] = operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
        return item

    first, again = upload(magenta), upload(magenta)
    assert first["url"] != again["url"]
    assert first["sha256"] == again["sha256"]
    _generate(tmp_path / "out", "run-1", reference_media_items=first)
    assert _generate(tmp_path / "out", "run-2", reference_media_items=again)["reused"] is True
    other = _generate(tmp_path / "out", "run-3", reference_media_items=upload(cyan))
    assert "reused" not in other
    assert _creates(rivya_airflow_conn) == 2


def test_batch_guardrails_count_only_the_items_really_generated(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    _batch(tmp_path, _items(10), "run-1")
    items = _items(10)
    items[0]["prompt"] = "product 0, in red"
    items[1]["prompt"] = "product 1, in red"
    # 10 items at 4 credits would be 40; only the 2 changed ones count against the cap of 8.
    summary = _batch(tmp_path, items, "run-2", max_credits=8, check_balance=True)
    assert (summary["generated"], summary["reused"]) == (2, 8)
    assert summary["credits_spent"] == 8
    assert summary["credits_saved_estimate"] == 32
    assert _creates(rivya_airflow_conn) == 12
    items[2]["prompt"] = "product 2, in red"
    items[3]["prompt"] = "product 3, in red"
    items[4]["prompt"] = "product 4, in red"
    with pytest.raises(AirflowFailException, match=r"3 x 4 = 12 credits.*cap of 8"):
        _batch(tmp_path, items, "run-3", max_credits=8)
    assert _creates(rivya_airflow_conn) == 12


def test_batch_refuses_a_bad_verify_unchanged_even_without_skip_unchanged(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    with pytest.raises(AirflowFailException, match="verify_unchanged:"):
        _batch(tmp_path, _items(2), "run-1", skip_unchanged=False, verify_unchanged="md5")
    assert rivya_airflow_conn.requests() == []


def test_batch_refuses_an_item_reference_without_its_sha256_before_any_request(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    items = [*_items(2), {"key": "sku-r", "prompt": "p", "reference_media_items": REFERENCE}]
    with pytest.raises(AirflowFailException, match=r"items\[2\]\.reference_media_items:"):
        _batch(tmp_path, items, "run-1")
    assert rivya_airflow_conn.requests() == []


def _record(out: Path, key: str) -> Path:
    return out / ".rivya-stored" / f"{key}.json"


def test_a_storing_record_is_never_reused(rivya_airflow_conn: Any, tmp_path: Path) -> None:
    """A run killed between its ``storing`` record and its ``stored`` one may have replaced the
    file: the next run regenerates that key, whatever the index says."""
    _batch(tmp_path, _items(3), "run-1")
    record = json.loads(_record(tmp_path, "sku-1").read_text())
    # What a batch killed while downloading sku-1 leaves: its in-progress mark, then the record.
    (tmp_path / ".rivya-stored" / "in-progress").write_text("")
    _record(tmp_path, "sku-1").write_text(json.dumps({**record, "status": "storing"}))
    summary = _batch(tmp_path, _items(3), "run-2")
    assert (summary["generated"], summary["reused"]) == (1, 2)


def test_records_are_read_only_after_a_batch_died_before_its_index(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    """A finished batch's index is the latest word (no record is read); while the in-progress
    mark of a batch that died is there, the records written since it override the index."""
    first = _batch(tmp_path, _items(3), "run-1")
    assert not (tmp_path / ".rivya-stored" / "in-progress").exists()  # removed after the index
    record_path = _record(tmp_path, "sku-0")
    record = json.loads(record_path.read_text())
    # A record that says another request, with no mark: the index wins, sku-0 is reused.
    record_path.write_text(json.dumps({**record, "digest": "0" * 64}))
    assert _batch(tmp_path, _items(3), "run-2")["reused"] == 3
    # A mark older than that record (a batch stored sku-0, then died): the record wins.
    mark = tmp_path / ".rivya-stored" / "in-progress"
    mark.write_text("")
    earlier = record_path.stat().st_mtime - 60
    os.utime(mark, (earlier, earlier))
    record_path.write_text(json.dumps({**record, "digest": "0" * 64}))
    summary = _batch(tmp_path, _items(3), "run-3")
    assert (summary["generated"], summary["reused"]) == (1, 2)
    assert not mark.exists()
    assert first["index"] == summary["index"]


def _review_round(out: Path, items: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """A later task of the same DAG run (its own identity) that takes ``only_keys``."""
    operator = RivyaBatchGenerateImagesOperator(
        task_id="regenerate",
        items=items,
        output_path=str(out),
        deferrable=False,
        poll_interval=0.2,
        retries=0,
        **kwargs,
    )
    ti = FakeTaskInstance(run_id="run-1", task_id="regenerate")
    result: dict[str, Any] = operator.execute({"ti": ti})  # type: ignore[arg-type]
    return result


def test_only_keys_with_regenerate_pays_again_for_the_rejected_and_touches_nothing_else(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    items = _items(6)
    _batch(tmp_path, items, "run-1")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.glob("*.png")}
    first = {line["key"]: line for line in map(json.loads, (tmp_path / "index.jsonl").open())}

    rejected = ["sku-1", "sku-4"]
    summary = _review_round(
        tmp_path, items, only_keys=rejected, regenerate=True, skip_unchanged=True
    )
    assert (summary["generated"], summary["reused"], summary["failed"]) == (2, 4, 0)
    assert _creates(rivya_airflow_conn) == 8  # the two rejects paid again, on purpose
    index = {line["key"]: line for line in map(json.loads, (tmp_path / "index.jsonl").open())}
    for key in ("sku-1", "sku-4"):
        assert index[key]["generation_id"] != first[key]["generation_id"]
        assert not index[key]["reused"]
    for key in ("sku-0", "sku-2", "sku-3", "sku-5"):
        assert index[key]["reused"]
        assert index[key]["generation_id"] == first[key]["generation_id"]
        name = f"{key}_0.png"
        assert (tmp_path / name).read_bytes() == before[name][0]
        assert (tmp_path / name).stat().st_mtime_ns == before[name][1]  # not even rewritten


def test_only_keys_without_regenerate_reuses_unchanged_selected_items(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    items = _items(4)
    _batch(tmp_path, items, "run-1")
    items[2]["prompt"] += ", in blue"  # the reviewer's note
    summary = _review_round(tmp_path, items, only_keys=["sku-2", "sku-3"], skip_unchanged=True)
    assert (summary["generated"], summary["reused"]) == (1, 3)  # sku-3 was unchanged
    assert _creates(rivya_airflow_conn) == 5


def test_only_keys_lists_an_unselected_item_with_no_stored_image_as_not_selected(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    _batch(tmp_path, _items(2), "run-1")
    summary = _review_round(tmp_path, _items(3), only_keys=["sku-0"], max_failed_fraction=0.5)
    assert summary["by_status"] == {"not_selected": 1, "succeeded": 2}
    assert summary["generated"] == 1
    index = {line["key"]: line for line in map(json.loads, (tmp_path / "index.jsonl").open())}
    assert index["sku-2"]["status"] == "not_selected"
    assert index["sku-2"]["images"] == []


@pytest.mark.parametrize(
    ("only_keys", "rule"),
    [(["sku-9"], "'sku-9' is not the key of any item"), ("sku-1", "must be a list")],
    ids=["unknown-key", "not-a-list"],
)
def test_a_bad_only_keys_is_refused_before_any_request(
    rivya_airflow_conn: Any, tmp_path: Path, only_keys: Any, rule: str
) -> None:
    with pytest.raises(AirflowFailException, match=f"only_keys: {rule}"):
        _review_round(tmp_path, _items(3), only_keys=only_keys)
    assert rivya_airflow_conn.requests() == []


def test_an_empty_only_keys_skips_the_task_without_a_request_or_a_write(
    rivya_airflow_conn: Any, tmp_path: Path
) -> None:
    """A review that rejected nothing: the regenerate step is skipped, the folder untouched."""
    from rivya_provider.compat import AirflowSkipException

    _batch(tmp_path, _items(3), "run-1")
    sent = len(rivya_airflow_conn.requests())
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(AirflowSkipException, match="only_keys is empty"):
        _review_round(tmp_path, _items(3), only_keys=[], regenerate=True, skip_unchanged=True)
    assert len(rivya_airflow_conn.requests()) == sent
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
