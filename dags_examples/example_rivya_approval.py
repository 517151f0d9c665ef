"""Generate candidate images, let a person pick one, publish only the approved image.

Use it when a human must sign off before an image goes live: brand assets, customer-facing
pages. Two candidates are generated; Airflow's human-in-the-loop ``HITLOperator`` then shows them
(images in the body, rendered as Markdown in the "Required actions" page of the Airflow UI)
and waits, without holding a worker slot, for someone to choose "Publish candidate 1",
"Publish candidate 2" or "Reject all". Only the chosen file is copied to
``$RIVYA_OUTPUT_DIR/approval/published/``; on "Reject all" a short-circuit step skips publishing
and nothing is published. Answer from the UI, or through the REST API::

    PATCH /api/v2/dags/example_rivya_approval/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails
    {"chosen_options": ["Publish candidate 1"], "params_input": {}}

The review may wait for days; Rivya's signed result URLs may expire before that. Set
``RIVYA_OUTPUT_URL`` to the ``http(s)://`` address where ``$RIVYA_OUTPUT_DIR`` is served (a CDN or
web server in front of the bucket or share): the candidates are then shown from the stored copies,
which stay. (The UI renders only ``http(s)`` images in Markdown: an inline ``data:`` thumbnail is
blanked.)

Needs Airflow 3.1+ (human-in-the-loop lives in the ``standard`` provider).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import dag, task

from rivya_provider.operators.generate import RivyaGenerateImageOperator
from rivya_provider.review import response_timeout_kwargs

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT_DIR = os.environ.get("RIVYA_OUTPUT_DIR") or os.path.join(os.path.dirname(HERE), "output")
APPROVAL_DIR = f"{OUTPUT_DIR}/approval"
#: Where OUTPUT_DIR is served over HTTP(S), if it is: the review shows the stored images from there.
OUTPUT_URL = (os.environ.get("RIVYA_OUTPUT_URL") or "").rstrip("/")
#: The Airflow pool of the tasks that talk to Rivya (it must exist: see docs/DEPLOYING.md).
POOL = os.environ.get("RIVYA_POOL") or "default_pool"

BRIEF = "A hero banner for an autumn sale of hand-made ceramics"
CANDIDATE_STYLES = ["warm watercolour illustration", "crisp studio photograph"]
OPTIONS = [f"Publish candidate {n}" for n in range(1, len(CANDIDATE_STYLES) + 1)]
REJECT = "Reject all"
# One folder of candidates per run; run ids hold ':' and '+', which some storages dislike.
RUN_FOLDER = "{{ run_id | replace(':', '-') | replace('+', '') }}"


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["rivya", "example", "human-in-the-loop"],
    doc_md=__doc__,
)
def example_rivya_approval() -> None:
    candidates = RivyaGenerateImageOperator.partial(
        task_id="generate_candidates",
        image_size="landscape_16_9",
        output_path=APPROVAL_DIR + "/candidates/" + RUN_FOLDER,
        output_url=f"{OUTPUT_URL}/approval/candidates/{RUN_FOLDER}" if OUTPUT_URL else None,
        deferrable=True,
        pool=POOL,
        pool_slots=1,
    ).expand(prompt=[f"{style}: {BRIEF}" for style in CANDIDATE_STYLES])

    @task
    def review_body(manifests: list[dict[str, Any]]) -> str:
        """Markdown for the reviewer: each candidate's image (the stored copy where it is served,
        else Rivya's result URL), its link and generation id."""
        from rivya_provider.observability import served_url

        lines = [f"**Brief:** {BRIEF}", ""]
        for number, manifest in enumerate(manifests, start=1):
            stored = manifest["images"][0]["path"]
            url = served_url(stored, OUTPUT_DIR, OUTPUT_URL) or manifest["primary_url"]
            lines += [
                f"### Candidate {number}",
                f"![candidate {number}]({url})",
                f"[{url}]({url}) (generation `{manifest['generation_id']}`)",
                "",
            ]
        return "\n".join(lines)

    review = HITLOperator(
        task_id="review",
        subject="Which banner should be published?",
        body=review_body(candidates.output),
        options=[*OPTIONS, REJECT],
        **response_timeout_kwargs(timedelta(days=3)),
    )

    @task.short_circuit
    def approved(decision: dict[str, Any]) -> bool:
        """Go on only when a candidate was chosen; "Reject all" skips publishing."""
        return decision["chosen_options"][0] in OPTIONS

    @task
    def publish(decision: dict[str, Any], manifests: list[dict[str, Any]]) -> str:
        """Copy the approved candidate to the published folder."""
        import shutil

        from airflow.sdk import ObjectStoragePath

        choice = decision["chosen_options"][0]
        manifest = list(manifests)[OPTIONS.index(choice)]
        source = ObjectStoragePath(_uri(manifest["images"][0]["path"]))
        target_dir = ObjectStoragePath(_uri(f"{APPROVAL_DIR}/published"))
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / source.name
        with source.open("rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        return str(target)

    approved(review.output) >> publish(review.output, candidates.output)


def _uri(path: str) -> str:
    return path if "://" in path else f"file://{path}"


example_rivya_approval()
