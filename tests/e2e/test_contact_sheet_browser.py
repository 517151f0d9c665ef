"""[review] A batch's contact sheet, opened as a reviewer opens it: from disk, in Chromium.

The batch operator runs against the emulator (inline wait) with one item the emulator fails and
one whose prompt carries a ``<script>`` and an ``onerror`` handler. Then headless Chromium opens
``index.html`` by its ``file://`` address: every succeeded tile's image has a natural size, the
failed item reads as failed with its error, the reused marker shows on a second run, and no
script ran (the window flags the prompt would set stay unset). Screenshot:
``.artifacts/ui/contact_sheet.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.operators.test_reuse import _batch

ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "ui"
FAIL = "[[fail]]"  # the emulator fails a generation whose prompt holds it
HOSTILE = (
    'a mug <script>window.rivyaScriptRan = true</script><img src="nowhere.png" '
    'onerror="window.rivyaHandlerRan = true"> on a table'
)


def _tiles(page: Any) -> list[dict[str, Any]]:
    return list(
        page.eval_on_selector_all(
            "figure.tile",
            """tiles => tiles.map(t => ({
                key: t.dataset.key,
                status: t.dataset.status,
                failed: t.classList.contains('failed'),
                reused: t.classList.contains('reused'),
                text: t.innerText,
                width: t.querySelector('img') ? t.querySelector('img').naturalWidth : null,
            }))""",
        )
    )


def _wait_until_images_complete(page: Any, timeout: float = 20.0) -> None:
    """Poll from here, not with ``page.wait_for_function``: when its predicate is not true at
    once, Playwright re-evaluates it with ``eval``, which the sheet's Content-Security-Policy
    forbids (seen under load in CI: "EvalError ... 'unsafe-eval' is not an allowed source")."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate("[...document.images].every(i => i.complete)"):
        assert time.monotonic() < deadline, "the sheet's images never finished loading"
        time.sleep(0.1)


def test_the_contact_sheet_shows_every_item_and_runs_no_script(
    rivya_airflow_conn: Any, tmp_path: Path, chromium: Path
) -> None:
    from playwright.sync_api import sync_playwright

    items = [{"key": f"SKU-{n:02d}", "prompt": f"product {n} on a white table"} for n in range(10)]
    items.append({"key": "SKU-FAILS", "prompt": f"a broken product {FAIL}"})
    items.append({"key": "SKU-HOSTILE", "prompt": HOSTILE})
    out = tmp_path / "catalogue"
    first = _batch(out, items, "run-1", max_failed_fraction=0.5)
    assert first["failed"] == 1
    _batch(out, items, "run-2", max_failed_fraction=0.5)  # what succeeded is reused now
    sheet = out / "index.html"
    assert "<script>window" not in sheet.read_text()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            # Tall enough that every lazy thumbnail is in view and loads.
            page = browser.new_page(viewport={"width": 1280, "height": 3000})
            page.goto(sheet.as_uri())
            page.wait_for_load_state("load")
            _wait_until_images_complete(page)
            tiles = _tiles(page)
            page.screenshot(path=str(ARTIFACTS / "contact_sheet.png"), full_page=True)
            flags = page.evaluate("[window.rivyaScriptRan, window.rivyaHandlerRan]")
        finally:
            browser.close()

    assert [tile["key"] for tile in tiles] == [item["key"] for item in items]
    by_key = {tile["key"]: tile for tile in tiles}
    for item in items:
        tile = by_key[item["key"]]
        if item["key"] == "SKU-FAILS":
            assert tile["failed"]
            assert tile["width"] is None  # no image, a "no image" box
            assert "failed" in tile["text"]
            assert "no image" in tile["text"]
        else:
            assert tile["width"], tile  # the image loaded: a natural width over 0
            assert tile["reused"]
            assert "(reused)" in tile["text"]
    assert HOSTILE in by_key["SKU-HOSTILE"]["text"]  # shown as the text it is
    assert flags == [None, None]  # neither the script nor the handler ran
