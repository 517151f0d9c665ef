# Over 400 lines: the operator's ~60-line docstring (every argument) and its two entry points
# (execute, execute_complete) with their thin steps; the rules live in rivya_provider.batch.
"""RivyaBatchGenerateImagesOperator: hundreds to thousands of images in one task, paid once each."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow.sdk import BaseOperator

from rivya_provider.airflow_errors import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY
from rivya_provider.compat import default_deferrable
from rivya_provider.links import RivyaBatchIndexLink

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.polling import PollSchedule
    from rivya_provider.batch import ItemOutcome, PlannedItem
    from rivya_provider.hooks.rivya import RivyaHook
    from rivya_provider.triggers.batch import BatchEvent

#: Key of the batch's submission records in the task state store (Airflow 3.3+).
STATE_STORE_KEY = "rivya_batch"
#: XCom key of what the resume needs: each item's generation id, refusals, reservations.
STATE_XCOM_KEY = "rivya_batch_state"


class RivyaBatchGenerateImagesOperator(BaseOperator):
    """Generate one image set per item of a catalogue, in one task, each item paid at most once.

    Every item is checked before anything is sent (one bad item fails the task naming its key and
    field), the estimated cost is checked against ``max_credits`` (and the balance with
    ``check_balance``), then every item is submitted under its own idempotency key (task identity,
    item key, item content), ``max_concurrency`` at a time. One deferral waits for the whole
    batch (GET-only polling in the triggerer). Items whose generation failed (credits released)
    get one fresh submission, under the next key of each one's series, and one more wait in the
    same try. Then every succeeded item's images are stored
    as ``<output_path>/<key>_<n>.<ext>``, ``<output_path>/index.jsonl`` gets one line per item
    (key, generation id, status, images, credits, error), and a small summary is returned.
    Everything that succeeded is stored before the task decides: it fails (retryably: a retry
    replays the paid items and resubmits the failed ones) only when the failed share is over
    ``max_failed_fraction``.

    :param items: the items (templated): a list of dicts (an upstream task's output works), or
        the path or URI of a JSON Lines file. An item has ``prompt`` (required), ``key``
        (optional, unique; names its files and its idempotency; 1-96 of ``A-Z a-z 0-9 _ -``;
        default ``item-<position>``), and may override ``image_size``, ``output_format``,
        ``model_params`` and ``reference_media_items``.
    :param output_path: folder for the images and the index (templated, required): an absolute
        local path or any ``ObjectStoragePath`` URI.
    :param model: Rivya model id for every item (templated). Default ``qwen-image``.
    :param image_size: default size preset of the items (templated).
    :param output_format: default ``png`` or ``jpeg`` of the items (templated).
    :param model_params: default extra model parameters of the items (templated).
    :param reference_media_items: default reference item(s) of the items (templated).
    :param rivya_conn_id: Airflow connection of type ``rivya``.
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to
        ``[operators] default_deferrable``.
    :param timeout: how long to wait for the whole batch (``timedelta`` or seconds), made into an
        absolute deadline once every item is submitted.
    :param poll_interval: initial seconds between status checks of each generation; ``None`` uses
        the connection's schedule.
    :param max_failed_fraction: the share of items (0 to 1) that may end failed while the task
        still succeeds. Default 0: any failure fails the task (after storing the rest).
    :param max_credits: fail before submitting when the estimate for all items is over this.
    :param check_balance: read the balance first; fail before submitting when the estimate is
        over it.
    :param max_concurrency: submissions and downloads in flight at once (1 to 64). Default 8.
    :param output_url: the ``http(s)://`` address where ``output_path`` is served (templated);
        the task's "Rivya batch index" link opens ``index.jsonl`` there (no link without it).
    :param skip_unchanged: reuse, without any request, each item whose request (model, prompt,
        params, references by their bytes' sha256) is unchanged since it was last stored in
        ``output_path`` and whose images are still there with their recorded size; only the
        others are generated (and count for ``max_credits`` and ``check_balance``). The index
        lists reused items with ``"reused": true`` and their original generation. Default off.
    :param verify_unchanged: how reused images are checked: ``size`` (one listing of the
        folder) or ``sha256`` (each image is read and hashed too).
    :param only_keys: generate only these item keys (templated), e.g. a review's rejects; every
        other item keeps what ``output_path`` holds for it (reused when unchanged and intact,
        else indexed ``not_selected``). ``None``: every item. An empty list (a review that
        rejected nothing) skips the task: no request, nothing written.
    :param regenerate: with ``only_keys``: generate those items afresh even when unchanged, each
        as new work of this task (its own idempotency keys), so each is paid again on purpose.
    """

    template_fields: Sequence[str] = (
        "items",
        "output_path",
        "model",
        "image_size",
        "output_format",
        "model_params",
        "reference_media_items",
        "output_url",
        "only_keys",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "items": "json",
        "model_params": "json",
        "reference_media_items": "json",
    }
    ui_color = "#f4e3ff"
    operator_extra_links = (RivyaBatchIndexLink(),)

    def __init__(
        self,
        *,
        items: list[dict[str, Any]] | str | ObjectStoragePath,
        output_path: str | ObjectStoragePath,
        model: str = "qwen-image",
        image_size: str | None = None,
        output_format: str | None = None,
        model_params: dict[str, Any] | None = None,
        reference_media_items: dict[str, Any] | list[dict[str, Any]] | None = None,
        rivya_conn_id: str = "rivya_default",
        deferrable: bool = default_deferrable(),
        timeout: timedelta | float = timedelta(hours=1),
        poll_interval: float | None = None,
        max_failed_fraction: float = 0.0,
        max_credits: int | None = None,
        check_balance: bool = False,
        max_concurrency: int = 8,
        output_url: str | None = None,
        skip_unchanged: bool = False,
        verify_unchanged: str = "size",
        only_keys: list[str] | None = None,
        regenerate: bool = False,
        retries: int | None = DEFAULT_RETRIES,
        retry_delay: timedelta | float = DEFAULT_RETRY_DELAY,
        **kwargs: Any,
    ) -> None:
        super().__init__(retries=retries, retry_delay=retry_delay, **kwargs)
        self.items = items
        self.output_path = output_path
        self.model = model
        self.image_size = image_size
        self.output_format = output_format
        self.model_params = model_params
        self.reference_media_items = reference_media_items
        self.rivya_conn_id = rivya_conn_id
        self.deferrable = deferrable
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_failed_fraction = max_failed_fraction
        self.max_credits = max_credits
        self.check_balance = check_balance
        self.max_concurrency = max_concurrency
        self.output_url = output_url
        self.skip_unchanged = skip_unchanged
        self.verify_unchanged = verify_unchanged
        self.only_keys = only_keys
        self.regenerate = regenerate

    def rivya_hook(self) -> RivyaHook:
        """The hook of this task's ``rivya_conn_id``."""
        from rivya_provider.hooks.rivya import RivyaHook

        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    # -- execute ----------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Check everything, submit every item once, then wait (deferred or inline) and store."""
        from rivya_provider.airflow_errors import to_airflow_error
        from rivya_provider.api.budget import check_before_create, check_max_credits
        from rivya_provider.api.errors import RivyaError, RivyaValidationError
        from rivya_provider.api.polling import seconds
        from rivya_provider.batch import plan_digest, submission_state
        from rivya_provider.compat import task_state_store
        from rivya_provider.observability import check_output_url
        from rivya_provider.storage import prepare_output_location

        try:
            planned = self._plan()
            timeout = seconds("timeout", self.timeout, 0.0, above=True)
            schedule = self._poll_schedule()
            self._failed_fraction()
            max_credits = check_max_credits(self.max_credits)
            concurrency = self._concurrency()
            if (output_path := cast("object", self.output_path)) is None:  # typed, not checked
                rule = "output_path: is required for a batch (images and index.jsonl)"
                raise RivyaValidationError(rule, field="output_path")
            prepare_output_location(output_path)
            check_output_url(self.output_url)
            reused, skipped = self._split(planned)
            if self.only_keys is not None and not self.only_keys:
                from rivya_provider.compat import AirflowSkipException

                raise AirflowSkipException("only_keys is empty: no item is selected")
            generated = [i for i in planned if i.key not in reused and i.key not in skipped]
            with self.rivya_hook().get_client() as client:
                estimate = None
                if generated:  # only the items really generated count against the budget
                    estimate = check_before_create(
                        client,
                        self.model,
                        len(generated),
                        max_credits=max_credits,
                        check_balance=bool(self.check_balance),
                    ).describe()
                store = task_state_store(context)
                previous = (store.get(STATE_STORE_KEY) if store is not None else None) or {}
                outcomes = self._submit(client, generated, context, previous, concurrency, store)
                deadline = time.time() + timeout
                state = submission_state(generated, outcomes) | {
                    "plan": plan_digest(planned),
                    "estimate": estimate,
                    "deadline": deadline,
                }
                if reused:
                    state["reused"] = [item.position for item in planned if item.key in reused]
                if skipped:
                    state["skipped"] = [item.position for item in planned if item.key in skipped]
                # Kept for the resume in XCom (the same try reads it back), not in the defer's
                # kwargs: dag.test() replaces those with the event.
                context["ti"].xcom_push(key=STATE_XCOM_KEY, value=state)
                event = self._wait(state, deadline, schedule)
                return self._conclude(client, planned, state, event, context)
        except RivyaError as exc:
            raise to_airflow_error(exc) from exc

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger: store what succeeded, write the index, decide."""
        from rivya_provider.airflow_errors import to_airflow_error
        from rivya_provider.api.errors import RivyaError
        from rivya_provider.batch import plan_digest
        from rivya_provider.triggers.batch import BatchEvent

        try:
            parsed = BatchEvent.parse(event)
            ti = context["ti"]
            state = ti.xcom_pull(task_ids=ti.task_id, key=STATE_XCOM_KEY, map_indexes=ti.map_index)
            if not isinstance(state, dict):
                raise RivyaError(
                    "the batch's submissions were not found in XCom on resume; a retry replays",
                    code="invalid_event",
                    retryable=True,
                )
            planned = self._plan()
            if state.get("plan") != plan_digest(planned):
                raise RivyaError(
                    "items: the items rendered on resume are not the ones submitted (the file "
                    "or upstream output changed while the batch waited)",
                    code="validation_failed",
                )
            with self.rivya_hook().get_client() as client:
                return self._conclude(client, planned, state, parsed, context)
        except RivyaError as exc:
            raise to_airflow_error(exc) from exc

    # -- steps ------------------------------------------------------------------------------

    def _plan(self) -> list[PlannedItem]:
        from rivya_provider.batch import BatchDefaults, load_items, plan_items

        defaults = BatchDefaults(
            model=self.model,
            image_size=self.image_size,
            output_format=self.output_format,
            model_params=self.model_params,
            reference_media_items=self.reference_media_items,
        )
        return plan_items(load_items(self.items), defaults)

    def _split(self, planned: list[PlannedItem]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """The records of the items reused, and the keys not selected (``batch.split_items``);
        decided before anything is sent."""
        from rivya_provider.batch import split_items

        found, skipped = split_items(
            planned,
            self.output_path,
            verify=self.verify_unchanged,
            skip_unchanged=bool(self.skip_unchanged),
            only_keys=self.only_keys,
            regenerate=bool(self.regenerate),
        )
        if found or skipped or self.only_keys is not None:
            self.log.info(
                "Of %d items: %d reused (unchanged, intact), %d not selected, %d to generate",
                len(planned),
                len(found),
                len(skipped),
                len(planned) - len(found) - len(skipped),
            )
        self._reused_records = found
        return found, skipped

    def _poll_schedule(self) -> PollSchedule | None:
        from rivya_provider.api.polling import PollSchedule

        return None if self.poll_interval is None else PollSchedule.every(self.poll_interval)

    def _failed_fraction(self) -> float:
        from rivya_provider.batch import checked_failed_fraction

        return checked_failed_fraction(self.max_failed_fraction)

    def _concurrency(self) -> int:
        from rivya_provider.batch import checked_concurrency

        return checked_concurrency(self.max_concurrency)

    def _submit(
        self,
        client: RivyaClient,
        planned: list[PlannedItem],
        context: Context,
        previous: dict[str, Any],
        concurrency: int,
        store: Any,
    ) -> dict[str, ItemOutcome]:
        """Every item's submission (created, replayed or reattached), as outcomes by key."""
        from rivya_provider.api.idempotency import client_request_id_for, derive_idempotency_key
        from rivya_provider.batch import submit_items, submitted_outcomes, traced
        from rivya_provider.generation_task import airflow_identity

        identity = airflow_identity(context)

        def base_key(item: PlannedItem) -> str:
            return derive_idempotency_key(f"{identity}/{item.key}", item.request.content_sha256())

        # Each item's trace id names the Airflow task and the item, as the generate operator's.
        sent = [traced(i, client_request_id_for(f"{identity}/{i.key}")) for i in planned]
        results = submit_items(client, sent, base_key, previous, concurrency)
        outcomes, records = submitted_outcomes(planned, results)
        if store is not None:  # a second round adds to the first round's records
            store.set(STATE_STORE_KEY, {**previous, **records})
        count, created = len(planned), len(records)
        self.log.info("Submitted %d of %d items (%d refused)", created, count, count - created)
        return outcomes

    def _wait(
        self, round_state: dict[str, Any], deadline: float, schedule: PollSchedule | None
    ) -> BatchEvent:
        """Wait for one round's generations: deferred (one trigger; resumes in
        :meth:`execute_complete`) or inline."""
        import asyncio

        from rivya_provider.triggers.batch import BatchEvent, RivyaBatchTrigger, wait_for_all

        waiting = [gid for gid in round_state["ids"] if gid]
        created = round_state.get("created")
        if not waiting:
            return BatchEvent(status="complete")
        if self.deferrable:
            self.defer(
                trigger=RivyaBatchTrigger(
                    generation_ids=waiting,
                    deadline=deadline,
                    rivya_conn_id=self.rivya_conn_id,
                    poll=schedule.to_dict() if schedule is not None else None,
                    model=self.model,
                    created_at=created,
                ),
                method_name="execute_complete",
            )

        async def wait() -> BatchEvent:
            async with self.rivya_hook().async_client(poll=schedule) as client:
                return await wait_for_all(
                    client, waiting, deadline, model=self.model, created_at=created
                )

        return asyncio.run(wait())

    def _conclude(
        self,
        client: RivyaClient,
        planned: list[PlannedItem],
        state: dict[str, Any],
        event: BatchEvent,
        context: Context,
    ) -> dict[str, Any]:
        """After a wait: the items whose generation failed get one fresh submission (under the
        next key of each one's series) and one more wait; then store, index and decide."""
        from rivya_provider.api.errors import RivyaError
        from rivya_provider.batch import failed_positions, generated_items, submission_state
        from rivya_provider.compat import task_state_store
        from rivya_provider.observability import publish_to_outlets

        generated = generated_items(planned, state)
        positions = [] if "second_round" in state else failed_positions(state, event)
        if positions:
            retried = [generated[p] for p in positions]
            store = task_state_store(context)
            previous = (store.get(STATE_STORE_KEY) if store is not None else None) or {}
            try:
                outcomes = self._submit(
                    client, retried, context, previous, self._concurrency(), store
                )
            except RivyaError as exc:  # e.g. out of credits: keep what the first round paid for
                self.log.warning(
                    "The %d failed items were not submitted again: %s", len(positions), exc
                )
            else:
                self.log.info("Submitting the %d failed items once more", len(positions))
                second = submission_state(retried, outcomes)
                second |= {"positions": positions, "first_event": event.model_dump(mode="json")}
                state = {**state, "second_round": second}
                context["ti"].xcom_push(key=STATE_XCOM_KEY, value=state)
                deadline = float(state.get("deadline") or time.time())
                event = self._wait(second, deadline, self._poll_schedule())
        summary = self._finish(
            client, planned, state, event, self._failed_fraction(), self._concurrency(), context
        )
        publish_to_outlets(context, self.outlets, summary)  # the summary names index.jsonl
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (called only by its provider, also on failure): each reference file in,
        ``index.jsonl`` out (it lists every stored image), and a ``rivya`` run facet."""
        from rivya_provider.lineage import batch_lineage

        return batch_lineage(self.model, *getattr(self, "_rivya_lineage", ([], None, [])))

    get_openlineage_facets_on_failure = get_openlineage_facets_on_complete

    def _finish(
        self,
        client: RivyaClient,
        planned: list[PlannedItem],
        state: dict[str, Any],
        event: BatchEvent,
        max_failed_fraction: float,
        concurrency: int,
        context: Context,
    ) -> dict[str, Any]:
        """Store what succeeded, write the index (and record the link to it), then succeed or
        fail by the failed share."""
        from rivya_provider.api.errors import RivyaError
        from rivya_provider.batch import (
            final_outcomes,
            generated_items,
            index_path,
            reused_outcomes,
            store_outcomes,
            summarize,
            write_index,
        )
        from rivya_provider.observability import push_link, served_url

        # The reused items first (after a deferral, looked up again): storing changes records.
        records = getattr(self, "_reused_records", None)
        verify = self.verify_unchanged
        reused = reused_outcomes(planned, state, self.output_path, verify, records)
        generated = generated_items(planned, state)
        outcomes = final_outcomes(generated, state, event)
        store_outcomes(client, generated, outcomes, self.output_path, concurrency, self.log)
        outcomes |= reused
        ordered = [outcomes[item.key] for item in planned]
        summary = summarize(ordered, index_path(self.output_path), state.get("estimate"))
        prompts = {item.key: item.request.prompt or "" for item in planned}
        index = write_index(self.output_path, ordered, summary, prompts)
        push_link(context, served_url(index, self.output_path, self.output_url) or "")
        ids = [o.generation_id for o in ordered if o.generation_id]
        self._rivya_lineage = ([item.request.params for item in planned], summary, ids)
        self.log.info("Rivya batch: %s; index %s", summary["by_status"], index)
        bad = sum(1 for o in ordered if o.status != "succeeded")
        if ordered and bad / len(ordered) > max_failed_fraction:
            raise RivyaError(
                f"{bad} of {len(ordered)} items did not succeed ({summary['by_status']}), over "
                f"max_failed_fraction {max_failed_fraction:g}; every success is stored and "
                f"listed in {index}. A retry replays the paid items and resubmits the failed.",
                code="batch_failed",
                retryable=True,
            )
        return summary
