"""Review a batch with Airflow's human-in-the-loop operators: the options, the body, the answer.

A batch's images are reviewed by key. The reviewer ticks ``Reject <key>`` for each image to make
again (``HITLOperator(..., multiple=True)``), or ``Approve all`` / ``Reject every image``; the
rejected keys go to the batch operator as ``only_keys=..., regenerate=True``, which pays for those
again and for nothing else. These functions build the options and the Markdown body (a grid of
thumbnails) and read the answer; text in, text out, no I/O. Used by
``dags_examples/example_rivya_catalogue_review.py``; made to be dropped into any DAG.

The options are the run's keys, known only at run time, and ``HITLOperator`` neither templates
its options nor accepts an empty list: map it once, over what an upstream task returns::

    HITLOperator.partial(task_id="review", subject=..., multiple=True).expand_kwargs(
        review_request()  # [{"options": review_options(keys), "body": review_body(...)}], or []
    )

An empty list (nothing to review) skips the review.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote

__all__ = [
    "APPROVE_ALL",
    "REJECT_ALL",
    "REJECT_PREFIX",
    "THUMBNAILS_PER_BODY",
    "rejected_keys",
    "response_timeout_kwargs",
    "review_body",
    "review_options",
    "with_note",
]

APPROVE_ALL = "Approve all"
#: Not ``Reject all``: that is also ``Reject <key>`` for a key ``all``.
REJECT_ALL = "Reject every image"
REJECT_PREFIX = "Reject "
#: Thumbnails shown in one review body; past that, the body links the contact sheet for the
#: rest (every key stays an option). README "Reviewing a batch" gives what was measured.
THUMBNAILS_PER_BODY = 60
#: Thumbnails per row of the body's grid (one Markdown table per row, the keys as its header);
#: 3 fit the Required Actions panel beside the grid view on a 1400 px wide window, 4 overflow.
GRID_COLUMNS = 3
#: Characters left as they are in an image URL (already-encoded ``%XX`` included).
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def review_options(keys: Sequence[str]) -> list[str]:
    """``Approve all``, ``Reject every image``, then ``Reject <key>`` for each key, in order.

    :raises ValueError: naming a key whose option would be another option (a repeated key, or a
        key like ``every image``): one tick must never stand for two answers.
    """
    options = [APPROVE_ALL, REJECT_ALL]
    for key in keys:
        option = REJECT_PREFIX + key
        if option in options:
            raise ValueError(f"keys: {key!r} gives the option {option!r} twice")
        options.append(option)
    return options


def rejected_keys(chosen_options: Sequence[str], keys: Sequence[str]) -> list[str]:
    """The keys a reviewer rejected, in the order of ``keys``.

    ``Reject every image`` rejects every key. ``Reject <key>`` rejects that key, also when
    ``Approve all`` was ticked with it: an image ticked as rejected is never published.

    :raises ValueError: for an option that is not one of ``review_options(keys)``, or no option.
    """
    chosen = set(chosen_options)
    unknown = sorted(chosen - set(review_options(keys)))
    if unknown or not chosen:
        raise ValueError(f"chosen_options: {unknown or 'nothing'} is not an answer to this review")
    if REJECT_ALL in chosen:
        return list(keys)
    return [key for key in keys if REJECT_PREFIX + key in chosen]


def with_note(items: Sequence[Mapping[str, Any]], keys: Sequence[str], note: object) -> list[Any]:
    """The batch items with the reviewer's ``note`` added to the prompt of each item in ``keys``
    (the others unchanged, so the batch reuses them); a blank or missing note changes nothing."""
    text = note.strip() if isinstance(note, str) else ""
    selected = set(keys)
    return [
        {**item, "prompt": f"{str(item['prompt']).rstrip()} {text}"}
        if text and item.get("key") in selected
        else dict(item)
        for item in items
    ]


def review_body(
    lines: Sequence[Mapping[str, Any]],
    image_url: Callable[[Mapping[str, Any]], str | None],
    *,
    heading: str,
    contact_sheet_url: str | None = None,
    limit: int = THUMBNAILS_PER_BODY,
) -> str:
    """Markdown for a review: ``heading``, then a grid of the first ``limit`` items (the key over
    its thumbnail), then a link to the contact sheet for the rest.

    :param lines: the ``index.jsonl`` lines of the items under review, in order.
    :param image_url: the ``http(s)`` address a browser loads an item's image from (the stored
        copy where it is served, else Rivya's result URL), or ``None``. Airflow's UI renders only
        such images in Markdown; ``data:`` URLs are blanked.
    :param heading: the first paragraph (what to do, which round).
    :param contact_sheet_url: where the batch's ``index.html`` is served, if it is.
    :param limit: how many thumbnails the body holds.
    """
    parts = [heading, ""]
    shown = list(lines[: max(0, limit)])
    for start in range(0, len(shown), GRID_COLUMNS):
        row = shown[start : start + GRID_COLUMNS]
        parts += [
            "| " + " | ".join(_markdown_text(str(line.get("key"))) for line in row) + " |",
            "|" + ":-:|" * len(row),
            "| " + " | ".join(_cell(line, image_url) for line in row) + " |",
            "",
        ]
    rest = len(lines) - len(shown)
    sheet = (
        f"[the contact sheet](<{quote(contact_sheet_url, safe=_URL_SAFE)}>)"
        if contact_sheet_url
        else ""
    )
    if rest > 0:
        where = sheet or "the contact sheet (`index.html` in the batch's folder)"
        parts.append(f"{rest} more not shown here: see {where}. Each key is an option below.")
    elif sheet:
        parts.append(f"Every image with its prompt: {sheet}.")
    return "\n".join(parts).rstrip() + "\n"


def response_timeout_kwargs(limit: timedelta) -> dict[str, timedelta]:
    """How long a review may wait, as this Airflow's ``HITLOperator`` takes it
    (``compat.hitl_response_timeout``)."""
    from rivya_provider.compat import hitl_response_timeout

    return hitl_response_timeout(limit)


def _cell(line: Mapping[str, Any], image_url: Callable[[Mapping[str, Any]], str | None]) -> str:
    url = image_url(line) if line.get("status") == "succeeded" else None
    if not url:
        return f"no image ({_markdown_text(str(line.get('status')))})"
    if not url.startswith(("https://", "http://")):  # the UI blanks any other image anyway
        return "no image (not served over http(s))"
    alt = _markdown_text(str(line.get("key")))
    # Percent-encode what could close the link (``>``) or split the table cell (``|``).
    return f"![{alt}](<{quote(url, safe=_URL_SAFE)}>)"


def _markdown_text(text: str) -> str:
    """``text`` shown literally in a Markdown table cell (no emphasis, link or cell break)."""
    special = "\\`*_{}[]()<>#+-.!|~"
    escaped = "".join("\\" + char if char in special else char for char in text)
    return " ".join(escaped.splitlines())
