"""The review helpers (``rivya_provider.review``): options, the answer, the note, the body."""

from __future__ import annotations

from typing import Any

import pytest

from rivya_provider.review import (
    APPROVE_ALL,
    REJECT_ALL,
    rejected_keys,
    review_body,
    review_options,
    with_note,
)

KEYS = ["MUG-01", "LAMP_02", "BAG-03"]


def _line(key: str, status: str = "succeeded") -> dict[str, Any]:
    return {"key": key, "status": status, "images": [{"path": f"/out/{key}_0.png"}]}


def _url(line: dict[str, Any]) -> str:
    return f"http://cdn.test/{line['key']}_0.png"


def test_options_offer_approve_all_reject_all_and_one_reject_per_key() -> None:
    assert review_options(KEYS) == [
        "Approve all",
        "Reject every image",
        "Reject MUG-01",
        "Reject LAMP_02",
        "Reject BAG-03",
    ]


@pytest.mark.parametrize(
    ("chosen", "rejected"),
    [
        ([APPROVE_ALL], []),
        ([REJECT_ALL], KEYS),
        (["Reject BAG-03", "Reject MUG-01"], ["MUG-01", "BAG-03"]),
        ([APPROVE_ALL, "Reject LAMP_02"], ["LAMP_02"]),  # a ticked reject is never published
        ([REJECT_ALL, "Reject LAMP_02"], KEYS),
    ],
    ids=["approve-all", "reject-all", "subset-in-key-order", "approve-with-reject", "reject-all+"],
)
def test_rejected_keys(chosen: list[str], rejected: list[str]) -> None:
    assert rejected_keys(chosen, KEYS) == rejected


@pytest.mark.parametrize("chosen", [[], ["Reject SOCK-05"], ["Publish"]])
def test_an_answer_that_is_not_an_option_is_refused(chosen: list[str]) -> None:
    with pytest.raises(ValueError, match=r"chosen_options: .* is not an answer to this review"):
        rejected_keys(chosen, KEYS)


def test_the_note_goes_only_into_the_rejected_prompts() -> None:
    items = [{"key": key, "prompt": f"photo of {key} "} for key in KEYS]
    noted = with_note(items, ["LAMP_02"], "  no text on the lamp ")
    assert [i["prompt"] for i in noted] == [
        "photo of MUG-01 ",
        "photo of LAMP_02 no text on the lamp",
        "photo of BAG-03 ",
    ]
    assert items[1]["prompt"] == "photo of LAMP_02 "  # the input is not changed
    assert with_note(items, ["LAMP_02"], "  ") == items
    assert with_note(items, ["LAMP_02"], None) == items


def test_the_body_is_a_grid_of_thumbnails_with_the_keys_as_literal_text() -> None:
    lines = [_line(f"K_{n}") for n in range(6)] + [_line("K_6", status="failed")]
    body = review_body(lines, _url, heading="**Review 1**", contact_sheet_url="http://cdn.test/i")
    rows = body.split("\n\n")
    assert rows[0] == "**Review 1**"
    # Three grid rows: 3, 3, then 1 item, each a small table with the keys as its header.
    assert rows[1].splitlines() == [
        "| K\\_0 | K\\_1 | K\\_2 |",
        "|:-:|:-:|:-:|",
        "| ![K\\_0](<http://cdn.test/K_0_0.png>) | ![K\\_1](<http://cdn.test/K_1_0.png>) "
        "| ![K\\_2](<http://cdn.test/K_2_0.png>) |",
    ]
    assert rows[3].splitlines() == ["| K\\_6 |", "|:-:|", "| no image (failed) |"]
    assert body.count("![") == 6
    assert "Every image with its prompt: [the contact sheet](<http://cdn.test/i>)." in body


def test_past_the_limit_the_body_links_the_contact_sheet_for_the_rest() -> None:
    lines = [_line(f"K{n}") for n in range(10)]
    body = review_body(lines, _url, heading="h", limit=4, contact_sheet_url="http://cdn.test/i")
    assert body.count("![") == 4
    assert "6 more not shown here: see [the contact sheet](<http://cdn.test/i>)" in body
    unserved = review_body(lines, _url, heading="h", limit=4)
    assert "6 more not shown here: see the contact sheet (`index.html`" in unserved


def test_a_url_cannot_close_the_image_or_break_the_cell() -> None:
    body = review_body([_line("K")], lambda _: "http://x.test/a b>c|d.png", heading="h")
    assert "![K](<http://x.test/a%20b%3Ec%7Cd.png>)" in body


def test_a_key_named_all_is_just_a_key() -> None:
    """``Reject all`` would be both "every key" and "the key all": the all-option says "every
    image" (no key has a space), and a key ``all`` is rejected alone."""
    assert rejected_keys(["Reject all"], ["all", "B"]) == ["all"]
    assert rejected_keys([REJECT_ALL], ["all", "B"]) == ["all", "B"]


@pytest.mark.parametrize("keys", [["A", "A"], ["every image"]], ids=["repeated", "collides"])
def test_keys_that_would_repeat_an_option_are_refused(keys: list[str]) -> None:
    with pytest.raises(ValueError, match=r"keys: .* gives the option .* twice"):
        review_options(keys)


def test_a_hostile_key_stays_text_in_its_cell() -> None:
    """A key cannot add a cell, a link, an image or a line to the body."""
    key = "a|b](http://x.test)![i](http://y.test)\r\nnext"
    body = review_body([_line(key, status="failed")], _url, heading="h")
    header = body.split("\n\n")[1].splitlines()[0]
    assert header == ("| a\\|b\\]\\(http://x\\.test\\)\\!\\[i\\]\\(http://y\\.test\\) next |")
    assert body.count("\n") == len(body.splitlines())  # no stray carriage return


def test_only_http_images_are_shown() -> None:
    body = review_body([_line("K")], lambda _: "javascript:alert(1)", heading="h")
    assert "no image (not served over http(s))" in body
    assert "javascript" not in body


def test_the_contact_sheet_link_cannot_be_closed_early() -> None:
    body = review_body([_line("K")], _url, heading="h", contact_sheet_url="http://x.test/a>b")
    assert "[the contact sheet](<http://x.test/a%3Eb>)" in body
