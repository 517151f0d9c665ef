"""Generate a catalogue's images, let a person reject any of them, regenerate only those, publish.

Use it when a batch of product images must be signed off before it goes live. One batch task
generates an image per product (``skip_unchanged``: a product unchanged since its image was stored
costs nothing). Then Airflow's human-in-the-loop review shows the images as a grid of thumbnails
on the "Required actions" page. The reviewer ticks ``Reject <SKU>`` for each image to make again
(any subset), or ``Approve all`` / ``Reject every image``, and may add a note. Only the rejected
products are generated again, with the note added to their prompt: each is a fresh generation,
paid again on purpose; approved images are never touched. The next review shows only the
regenerated images.

After at most ``RIVYA_REVIEW_ROUNDS`` reviews (default 2; read when the file is parsed, since it
shapes the DAG), the approved images are copied to ``$RIVYA_OUTPUT_DIR/catalogue_review/published/``
and the Asset ``rivya_catalogue_published`` gets an event whose ``extra["rivya"]["published"]``
lists their keys. A product rejected in the last round is not published (a copy an earlier run
published stays: a rejected new image never replaces a live one).

A review left unanswered for 3 days, or a regeneration that still fails after its retries, fails
the run and publishes nothing; the stored images stay (clear the failed task to go on).

The review body shows up to 60 thumbnails; past that it links the batch's contact sheet
(``index.html``), and every product stays an option. Airflow's UI shows only ``http(s)`` images:
set ``RIVYA_OUTPUT_URL`` to where ``$RIVYA_OUTPUT_DIR`` is served (a CDN or web server), else the
body uses Rivya's signed result URLs, which may expire before a slow review. Answer from the UI,
or through the REST API (the review is mapped once, so its map index is 0; ``{dag_id}`` is
``example_rivya_catalogue_review``)::

    PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/review_1/0/hitlDetails
    {"chosen_options": ["Reject MUG-01", "Reject BAG-03"], "params_input": {"note": "no text"}}

The catalogue is ``assets/products.json`` or the JSON file ``RIVYA_CATALOGUE`` names, read at run
time. Needs Airflow 3.1+ (human-in-the-loop lives in the ``standard`` provider).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, Param, dag, task

from rivya_provider.operators.batch import RivyaBatchGenerateImagesOperator
from rivya_provider.review import response_timeout_kwargs

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOGUE = os.path.join(HERE, "assets", "products.json")
OUTPUT_DIR = os.environ.get("RIVYA_OUTPUT_DIR") or os.path.join(os.path.dirname(HERE), "output")
REVIEW_DIR = f"{OUTPUT_DIR}/catalogue_review"
#: The images under review (stable, so an unchanged product is reused run after run).
CANDIDATES = f"{REVIEW_DIR}/candidates"
PUBLISHED = f"{REVIEW_DIR}/published"
#: Where OUTPUT_DIR is served over HTTP(S), if it is: the review shows the stored images from there.
OUTPUT_URL = (os.environ.get("RIVYA_OUTPUT_URL") or "").rstrip("/")
CANDIDATES_URL = f"{OUTPUT_URL}/catalogue_review/candidates" if OUTPUT_URL else None
#: The Airflow pool of the tasks that talk to Rivya (it must exist: see docs/DEPLOYING.md).
POOL = os.environ.get("RIVYA_POOL") or "default_pool"
#: Reviews per run, the first included: each review but the last may send rejects back.
REVIEW_ROUNDS = int(os.environ.get("RIVYA_REVIEW_ROUNDS") or 2)
if REVIEW_ROUNDS < 1:
    raise ValueError(f"RIVYA_REVIEW_ROUNDS: must be 1 or more (got {REVIEW_ROUNDS})")

#: One size for the whole catalogue. (Not a DAG param: on Airflow 3.1 a review form shows the
#: DAG's params too, and then refuses an answer without them.)
IMAGE_SIZE = "square"
PROMPT_TEMPLATE = "Product photo of {description}, {style}. Clean composition, photorealistic."
#: A typo in a catalogue filter must not spend thousands of credits: 4 credits per image.
MAX_CREDITS = 4 * 500

#: What the first batch and every regeneration share: one folder, reuse, the guardrails.
BATCH: dict[str, Any] = {
    "image_size": IMAGE_SIZE,
    "output_path": CANDIDATES,
    "output_url": CANDIDATES_URL,
    "skip_unchanged": True,
    "deferrable": True,
    "max_credits": MAX_CREDITS,
    "pool": POOL,
    "pool_slots": 8,
}

PUBLISHED_IMAGES = Asset(name="rivya_catalogue_published", uri=f"file://{PUBLISHED}")


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["rivya", "example", "human-in-the-loop"],
    doc_md=__doc__,
)
def example_rivya_catalogue_review() -> None:
    @task
    def catalogue_items() -> list[dict[str, str]]:
        """One batch item per product (read at run time): its SKU as the key."""
        import json

        with open(os.environ.get("RIVYA_CATALOGUE") or CATALOGUE, encoding="utf-8") as handle:
            products: list[dict[str, Any]] = json.load(handle)
        return [{"key": p["sku"], "prompt": PROMPT_TEMPLATE.format(**p)} for p in products]

    items = catalogue_items()
    generate = RivyaBatchGenerateImagesOperator(task_id="generate", items=items, **BATCH)

    @task(trigger_rule="none_failed")
    def review_request(state: dict[str, Any], round_number: int) -> list[dict[str, Any]]:
        """The review of this round's keys as ``HITLOperator`` kwargs, or ``[]`` (no review)."""
        from rivya_provider.review import review_body, review_options

        keys = _pending(state)
        if not keys:
            return []
        by_key = _index()
        heading = (
            f"**Review {round_number} of {REVIEW_ROUNDS}: {len(keys)} image(s).** Tick "
            "*Reject* for each image to make again (any number), or *Approve all*. A note is "
            "added to the prompt of every rejected image."
        )
        if round_number == REVIEW_ROUNDS:
            heading += " This is the last review: a rejected image is not published."
        body = review_body(
            [by_key[key] for key in keys],
            _image_url,
            heading=heading,
            contact_sheet_url=f"{CANDIDATES_URL}/index.html" if CANDIDATES_URL else None,
        )
        return [{"options": review_options(keys), "body": body}]

    @task(trigger_rule="none_failed", multiple_outputs=True)
    def decide(state: dict[str, Any], answers: Any, round_number: int) -> dict[str, Any]:
        """Split this round's keys into approved and rejected; the rejected go to the next round
        (with the reviewer's note in their prompt), or, after the last review, stay rejected."""
        from rivya_provider.review import rejected_keys, with_note

        keys = _pending(state)
        answer = next(iter(answers or []), None)
        if answer is None:  # nothing was under review
            return {**state, "pending": []}
        rejected = rejected_keys(answer["chosen_options"], keys)
        last = round_number == REVIEW_ROUNDS
        note = (answer.get("params_input") or {}).get("note")
        return {
            "items": state["items"] if last else with_note(state["items"], rejected, note),
            "pending": [] if last else rejected,
            "approved": [*state["approved"], *(key for key in keys if key not in rejected)],
            "rejected": rejected if last else [],
        }

    @task(trigger_rule="none_failed", outlets=[PUBLISHED_IMAGES], multiple_outputs=False)
    def publish(state: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
        """Copy the approved images (as stored now) to the published folder; an approved key
        with no stored image (its generation failed, its file vanished) is listed as missing."""
        import shutil

        from airflow.sdk import ObjectStoragePath

        by_key = _index()
        target_dir = ObjectStoragePath(_uri(PUBLISHED))
        target_dir.mkdir(parents=True, exist_ok=True)
        published, missing = [], []
        for key in state["approved"]:
            line = by_key.get(key) or {}
            if line.get("status") != "succeeded" or not line.get("images"):
                missing.append(key)
                continue
            for image in line["images"]:
                source = ObjectStoragePath(_uri(image["path"]))
                with source.open("rb") as src, (target_dir / source.name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            published.append(key)
        extra = {"published": published, "rejected": state["rejected"], "missing": missing}
        outlet_events[PUBLISHED_IMAGES].extra = {"rivya": extra}
        return {"folder": PUBLISHED, **extra}

    state: Any = {"items": items, "pending": None, "approved": [], "rejected": []}
    previous: Any = generate
    for round_number in range(1, REVIEW_ROUNDS + 1):
        request = review_request.override(task_id=f"review_request_{round_number}")(
            state, round_number
        )
        previous >> request
        review = HITLOperator.partial(
            task_id=f"review_{round_number}",
            subject=f"Catalogue review {round_number} of {REVIEW_ROUNDS}: reject any image",
            multiple=True,
            params={
                "note": Param(
                    None,
                    type=["null", "string"],
                    title="Note added to rejected prompts",
                    description="Optional, e.g. 'no text on the label'.",
                )
            },
            **response_timeout_kwargs(timedelta(days=3)),
        ).expand_kwargs(request)
        state = decide.override(task_id=f"decide_{round_number}")(
            state, review.output, round_number
        )
        if round_number < REVIEW_ROUNDS:
            previous = RivyaBatchGenerateImagesOperator(
                task_id=f"regenerate_{round_number}",
                items=state["items"],
                only_keys=state["pending"],  # [] skips the task: nothing was rejected
                regenerate=True,
                **BATCH,
            )
    publish(state)


def _pending(state: dict[str, Any]) -> list[str]:
    """The keys under review: all items in the first round, then the last round's rejects."""
    pending = state["pending"]
    return [item["key"] for item in state["items"]] if pending is None else list(pending)


def _index() -> dict[str, dict[str, Any]]:
    """The batch's ``index.jsonl`` lines by key (the images as stored now)."""
    import json

    from airflow.sdk import ObjectStoragePath

    text = (ObjectStoragePath(_uri(CANDIDATES)) / "index.jsonl").read_text()
    return {line["key"]: line for line in map(json.loads, text.splitlines())}


def _image_url(line: dict[str, Any]) -> str | None:
    """A browser's address of the item's first image: the stored copy where it is served, else
    Rivya's result URL (signed; it may expire). A regenerated image keeps its file name, so the
    served address carries the image's sha256: the second review never shows a cached first."""
    from rivya_provider.observability import served_url

    image = (line.get("images") or [{}])[0]
    served = served_url(image.get("path"), CANDIDATES, CANDIDATES_URL or None)
    if served:
        return f"{served}?v={str(image.get('sha256'))[:16]}"
    return image.get("url")


def _uri(path: str) -> str:
    return path if "://" in path else f"file://{path}"


example_rivya_catalogue_review()
