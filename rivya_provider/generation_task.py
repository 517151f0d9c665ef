"""The Airflow side of waiting for a generation and finishing it, shared by operator and sensor.

:class:`GenerationTaskMixin` holds the one path from "a generation exists" to "its images are
stored and the manifest returned": defer to the trigger, resume from its event, or finish
inline. The rules it applies live elsewhere, each in one place: idempotency in
``rivya_provider.api.idempotency``, storage in ``rivya_provider.storage``, the event in
``rivya_provider.triggers.generation``, error outcomes in ``rivya_provider.airflow_errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context, ObjectStoragePath

    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.models import Generation
    from rivya_provider.api.polling import PollSchedule
    from rivya_provider.hooks.rivya import RivyaHook

    _OperatorBase = BaseOperator
else:
    _OperatorBase = object

__all__ = ["GenerationTaskMixin", "airflow_identity"]


def airflow_identity(context: Mapping[str, Any]) -> str:
    """``dag_id/task_id/run_id/map_index`` of the running task instance (never the try)."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else map_index
    return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}/{map_index}"


class GenerationTaskMixin(_OperatorBase):
    """Wait for a generation (deferred or inline), then store its images and return a manifest.

    The class using it sets ``rivya_conn_id``, ``output_path`` and ``poll_interval``, and may
    override :meth:`output_format_hint` and :meth:`manifest_request_id`.
    """

    rivya_conn_id: str
    output_path: str | ObjectStoragePath | None
    poll_interval: float | None
    #: The http(s) address where ``output_path`` is served (the extra link opens images there).
    output_url: str | None = None

    def rivya_hook(self) -> RivyaHook:
        """The hook of this task's ``rivya_conn_id``."""
        from rivya_provider.hooks.rivya import RivyaHook

        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    def output_format_hint(self) -> str | None:
        """File extension hint when the server sends no content type."""
        return None

    def output_name_hint(self) -> str | None:
        """File-name stem of the stored images (``None``: the generation id)."""
        return None

    def manifest_request_id(self, context: Context) -> str | None:
        """The ``client_request_id`` recorded in the manifest."""
        return None

    def poll_schedule(self) -> PollSchedule | None:
        """The ``poll_interval`` override, or ``None`` for the connection's schedule."""
        from rivya_provider.api.polling import PollSchedule

        return None if self.poll_interval is None else PollSchedule.every(self.poll_interval)

    def check_wait_settings(self) -> None:
        """Check ``poll_interval`` and ``output_path`` and create the output folder.

        Runs before the first request: nothing is paid for a wait or a store that cannot work.

        :raises RivyaValidationError: naming the argument and the rule.
        """
        from rivya_provider.observability import check_output_url
        from rivya_provider.storage import check_output_name, prepare_output_location

        self.poll_schedule()
        check_output_name(self.output_name_hint())
        prepare_output_location(self.output_path)
        check_output_url(self.output_url)

    def defer_until_terminal(
        self,
        generation_id: str,
        deadline: float,
        model: str | None = None,
        created_at: float | None = None,
    ) -> None:
        """Hand the wait to :class:`RivyaGenerationTrigger`; resume in :meth:`execute_complete`.

        ``model`` and ``created_at`` (epoch seconds), when known, let the trigger make its first
        check near the expected completion.
        """
        from rivya_provider.triggers.generation import RivyaGenerationTrigger

        schedule = self.poll_schedule()
        self.defer(
            trigger=RivyaGenerationTrigger(
                generation_id=generation_id,
                deadline=deadline,
                rivya_conn_id=self.rivya_conn_id,
                poll=schedule.to_dict() if schedule is not None else None,
                model=model,
                created_at=created_at,
            ),
            method_name="execute_complete",
        )

    def label_map_index(self, context: Context) -> None:
        """Label a mapped task in the grid (see :func:`.observability.label_map_index`);
        nothing by default."""

    def reuse_record(self) -> tuple[str, str] | None:
        """``(output_name, request digest)`` when the stored images get a record for
        ``skip_unchanged`` (``rivya_provider.reuse``); ``None`` by default."""
        return None

    def lineage_reference_items(self) -> object:
        """The reference items this task sent, as OpenLineage inputs (a sensor knows none)."""
        return None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (called only by its provider): reference files in, stored images out,
        and a ``rivya`` run facet (model, generation id, credits, ``client_request_id``)."""
        from rivya_provider.lineage import generation_lineage

        return generation_lineage(
            self.lineage_reference_items(), getattr(self, "_rivya_manifest", None)
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage of a failed try: the reference files in, the generation if one exists."""
        from rivya_provider.lineage import generation_lineage

        return generation_lineage(
            self.lineage_reference_items(), None, getattr(self, "_rivya_generation_id", None)
        )

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger: read its event, then store the images."""
        from rivya_provider.airflow_errors import to_airflow_error
        from rivya_provider.api.errors import RivyaError
        from rivya_provider.triggers.generation import GenerationEvent

        self.label_map_index(context)
        try:
            generation = GenerationEvent.parse(event).succeeded_generation()
            with self.rivya_hook().get_client() as client:
                return self.finish(client, generation, context)
        except RivyaError as exc:
            raise to_airflow_error(exc) from exc

    def finish(
        self, client: RivyaClient, generation: Generation, context: Context
    ) -> dict[str, Any]:
        """Store the outputs of a terminal generation, log the end line, return the manifest.

        :raises GenerationFailedError: the generation failed.
        """
        from rivya_provider.api.errors import GenerationFailedError, RivyaError
        from rivya_provider.observability import (
            generation_summary,
            image_link,
            publish_to_outlets,
            push_link,
        )
        from rivya_provider.reuse import mark_storing, record_stored
        from rivya_provider.storage import as_storage_path, build_manifest, store_images

        self._rivya_generation_id = generation.id  # for lineage, whatever happens next
        if not generation.succeeded:
            raise GenerationFailedError(generation)
        if not generation.result_urls:
            raise RivyaError(
                f"generation {generation.id} says succeeded but lists no result; not reporting "
                "success (a retry asks again)",
                code="invalid_response",
                retryable=True,
            )
        # The record of what is stored (for skip_unchanged) says "storing" while files change.
        recorded = self.reuse_record()
        folder = as_storage_path(self.output_path) if self.output_path is not None else None
        if recorded is not None and folder is not None:
            mark_storing(folder, *recorded, generation.id)
        images = store_images(
            client,
            generation,
            self.output_path,
            self.output_format_hint(),
            self.log,
            name=self.output_name_hint(),
        )
        if recorded is not None and folder is not None:
            record_stored(folder, *recorded, generation.id, images, generation.final_credits)
        self.log.info(
            "Rivya generation %s succeeded: %s credits; %s",
            generation.id,
            generation.final_credits,
            ", ".join(str(i["path"]) for i in images if i["path"]) or "URLs only, not stored",
        )
        manifest = build_manifest(generation, images, self.manifest_request_id(context))
        publish_to_outlets(context, self.outlets, generation_summary(manifest))
        push_link(context, image_link(manifest, self.output_path, self.output_url))
        self._rivya_manifest = manifest
        return manifest
