"""RivyaGenerateImageOperator: validate, submit once, wait, store images, return a manifest."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from rivya_provider.airflow_errors import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY
from rivya_provider.compat import default_deferrable
from rivya_provider.generation_task import GenerationTaskMixin
from rivya_provider.links import RivyaImageLink

#: Key of the generation id in XCom (pushed before waiting) and of the task state store record.
GENERATION_ID_XCOM_KEY = "generation_id"
STATE_STORE_KEY = "rivya_generation"

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.models import Generation, GenerationRequest


class RivyaGenerateImageOperator(GenerationTaskMixin, BaseOperator):
    """Generate images with Rivya and store them where you say.

    The request is validated locally first (nothing is sent, no credit spent on bad input), then
    submitted once with a deterministic ``Idempotency-Key``: an Airflow retry replays the same
    generation instead of paying again. The wait is deferred to the triggerer by default. Returns a
    small JSON manifest (ids, URLs, stored paths, sizes, sha256, credits), never image bytes.

    :param prompt: text prompt (templated). ``qwen-image``: 1 to 5000 characters.
    :param model: Rivya model id (templated). Default ``qwen-image``.
    :param image_size: ``qwen-image`` size preset (templated): ``square``, ``square_hd``,
        ``portrait_4_3``, ``portrait_16_9``, ``landscape_4_3`` or ``landscape_16_9``.
        ``None`` keeps the API default (``square_hd``).
    :param output_format: ``png`` or ``jpeg`` (templated). ``None`` keeps the default (``png``).
    :param model_params: extra model parameters merged into the request's ``params`` (templated).
        Named ``model_params`` because ``params`` is Airflow's own task argument.
    :param reference_media_items: one reference item dict or a list of them (templated), exactly
        what ``RivyaFileUploadOperator`` returns, so ``upload.output`` plugs in directly.
    :param output_path: folder for the images (templated): a local path or any
        ``ObjectStoragePath`` URI (``file://``, ``s3://``...). ``None`` keeps URLs only.
    :param rivya_conn_id: Airflow connection of type ``rivya``.
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: initial seconds between status checks; ``None`` uses the shared
        schedule (first check after ~2 s, then 5 s growing to 15 s).
    :param timeout: how long to wait for the generation (``timedelta`` or seconds), made into an
        absolute deadline at submit.
    :param wait_for_completion: ``False`` returns right after submitting (status ``queued``);
        wait later with ``RivyaGenerationSensor``.
    :param client_request_id: trace id sent to Rivya (templated). Default: the Airflow identity.
    :param idempotency_key: override the derived ``Idempotency-Key`` (templated).
    :param max_credits: fail before submitting when the estimated cost (the model's price from
        the catalogue, else the documented table; qwen-image 4) is over this many credits.
    :param check_balance: read the account's balance first and fail before submitting when
        the estimate is over it.
    :param output_name: file-name stem of the stored images (templated), e.g. a product key:
        ``<output_name>_<n>.<ext>``. Default: the generation id.
    :param output_url: the ``http(s)://`` address where ``output_path`` is served (a CDN or web
        server in front of the bucket or share), templated. The task's "Rivya image" link opens the
        stored image there; without it, the result URL Rivya signed (which may expire).
    :param skip_unchanged: with ``output_name`` and ``output_path``: send no request and return
        the stored images when this request (model, prompt, params, references by their bytes'
        sha256) is the one they were made from and they are intact, as the batch operator does
        per item. The manifest then says ``"reused": true``. Default off.
    :param verify_unchanged: how the stored images are checked for reuse: ``size`` (one
        listing of the folder) or ``sha256`` (each image is read and hashed too).
    """

    template_fields: Sequence[str] = (
        "prompt",
        "model",
        "image_size",
        "output_format",
        "model_params",
        "reference_media_items",
        "output_path",
        "client_request_id",
        "idempotency_key",
        "output_name",
        "output_url",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "model_params": "json",
        "reference_media_items": "json",
    }
    ui_color = "#f4e3ff"
    operator_extra_links = (RivyaImageLink(),)

    def __init__(
        self,
        *,
        prompt: str,
        model: str = "qwen-image",
        image_size: str | None = None,
        output_format: str | None = None,
        model_params: dict[str, Any] | None = None,
        reference_media_items: dict[str, Any] | list[dict[str, Any]] | None = None,
        output_path: str | ObjectStoragePath | None = None,
        rivya_conn_id: str = "rivya_default",
        deferrable: bool = default_deferrable(),
        poll_interval: float | None = None,
        timeout: timedelta | float = timedelta(minutes=10),
        wait_for_completion: bool = True,
        client_request_id: str | None = None,
        idempotency_key: str | None = None,
        max_credits: int | None = None,
        check_balance: bool = False,
        output_name: str | None = None,
        output_url: str | None = None,
        skip_unchanged: bool = False,
        verify_unchanged: str = "size",
        retries: int | None = DEFAULT_RETRIES,
        retry_delay: timedelta | float = DEFAULT_RETRY_DELAY,
        **kwargs: Any,
    ) -> None:
        super().__init__(retries=retries, retry_delay=retry_delay, **kwargs)
        self.prompt = prompt
        self.model = model
        self.image_size = image_size
        self.output_format = output_format
        self.model_params = model_params
        self.reference_media_items = reference_media_items
        self.output_path = output_path
        self.rivya_conn_id = rivya_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.wait_for_completion = wait_for_completion
        self.client_request_id = client_request_id
        self.idempotency_key = idempotency_key
        self.max_credits = max_credits
        self.check_balance = check_balance
        self.output_name = output_name
        self.output_url = output_url
        self.skip_unchanged = skip_unchanged
        self.verify_unchanged = verify_unchanged
        self._last_status: str | None = None

    # -- execute ----------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, submit once (or reattach), then finish inline, wait, or defer."""
        from rivya_provider.airflow_errors import to_airflow_error
        from rivya_provider.api.budget import check_before_create, check_max_credits
        from rivya_provider.api.errors import RivyaError
        from rivya_provider.api.polling import seconds
        from rivya_provider.reuse import check_verify
        from rivya_provider.storage import build_manifest

        self.label_map_index(context)
        client_request_id = self.manifest_request_id(context)
        try:
            request = self._build_request(client_request_id)
            timeout = seconds("timeout", self.timeout, 0.0, above=True)
            self.check_wait_settings()
            base_key = self._base_key(request, context)
            max_credits = check_max_credits(self.max_credits)
            check_verify(self.verify_unchanged)
            if self.skip_unchanged and (reused := self._stored_unchanged(request)) is not None:
                return self._finish_reused(reused, client_request_id, context)
            with self.rivya_hook().get_client() as client:
                check_before_create(
                    client,
                    self.model,
                    1,
                    max_credits=max_credits,
                    check_balance=bool(self.check_balance),
                )
                generation = self._submit(client, request, base_key, context)
                context["ti"].xcom_push(key=GENERATION_ID_XCOM_KEY, value=generation.id)
                if not self.wait_for_completion:
                    return build_manifest(generation, [], client_request_id)
                self._log_status(generation)
                # No status check right after the create: it found the generation still running
                # nearly always (one wasted request per image); the wait's first check does it.
                if not generation.finished:
                    deadline = time.time() + timeout
                    if self.deferrable:
                        self.defer_until_terminal(
                            generation.id, deadline, generation.model, generation.created_epoch
                        )
                    generation = client.wait_for_generation(
                        generation.id,
                        deadline=deadline,
                        on_status=self._log_status,
                        poll=self.poll_schedule(),
                        model=generation.model,
                        created_at=generation.created_epoch,
                    )
                return self.finish(client, generation, context)
        except RivyaError as exc:
            raise to_airflow_error(exc) from exc

    # -- steps ------------------------------------------------------------------------------

    def manifest_request_id(self, context: Context) -> str:
        """The ``client_request_id`` argument, or one carrying the Airflow identity."""
        from rivya_provider.api.idempotency import client_request_id_for
        from rivya_provider.generation_task import airflow_identity

        return self.client_request_id or client_request_id_for(airflow_identity(context))

    def output_name_hint(self) -> str | None:
        """The ``output_name`` argument (checked with the other wait settings)."""
        return self.output_name

    def output_format_hint(self) -> str | None:
        """The requested format (argument, then ``model_params``; ``png`` for qwen-image)."""
        if self.output_format:
            return self.output_format
        value = (self.model_params or {}).get("output_format")
        return str(value) if value else ("png" if self.model == "qwen-image" else None)

    def reuse_record(self) -> tuple[str, str] | None:
        """With ``skip_unchanged`` (and ``output_name``), the stored images get a record of their
        request digest next to them, so the next run can reuse them; without it, no record."""
        from rivya_provider.reuse import request_digest

        if not self.skip_unchanged or self.output_name is None:
            return None
        return self.output_name, request_digest(self._build_request(None))

    def _stored_unchanged(self, request: GenerationRequest) -> dict[str, Any] | None:
        """The record of the images stored for this very request under ``output_name``, if they
        are intact (``rivya_provider.reuse``); checked before any request.

        :raises RivyaValidationError: ``skip_unchanged`` without ``output_name`` or
            ``output_path``, a reference without its sha256, or a bad ``verify_unchanged``.
        """
        from rivya_provider.api.errors import RivyaValidationError
        from rivya_provider.reuse import (
            check_reusable_request,
            check_verify,
            request_digest,
            reusable,
        )
        from rivya_provider.storage import as_storage_path

        if self.output_name is None or self.output_path is None:
            missing = "output_name" if self.output_name is None else "output_path"
            raise RivyaValidationError(
                f"skip_unchanged: needs {missing}: the images are found again under a stable "
                "name (output_name, e.g. a product key) in a stable folder (output_path); "
                "without them every run writes new files and nothing can be reused",
                field="skip_unchanged",
            )
        verify = check_verify(self.verify_unchanged)
        check_reusable_request(request, "reference_media_items")
        folder = as_storage_path(self.output_path)
        found = reusable(folder, {self.output_name: request_digest(request)}, verify)
        return found.get(self.output_name)

    def _finish_reused(
        self, record: dict[str, Any], client_request_id: str, context: Context
    ) -> dict[str, Any]:
        """The manifest of images reused from an earlier run (nothing was sent)."""
        from rivya_provider.observability import (
            generation_summary,
            image_link,
            publish_to_outlets,
            push_link,
        )

        credits = record.get("final_credits")
        manifest: dict[str, Any] = {
            "generation_id": record.get("generation_id"),
            "model": self.model,
            "status": "succeeded",
            "reused": True,
            "primary_url": None,
            "urls": [],
            "reserved_credits": None,
            "final_credits": credits if isinstance(credits, int) else None,
            "client_request_id": client_request_id,
            "images": record["images"],
        }
        self.log.info(
            "Reused the images of Rivya generation %s (request unchanged, stored intact): %s",
            manifest["generation_id"],
            ", ".join(str(image.get("path")) for image in manifest["images"]),
        )
        context["ti"].xcom_push(key=GENERATION_ID_XCOM_KEY, value=manifest["generation_id"])
        publish_to_outlets(context, self.outlets, generation_summary(manifest))
        push_link(context, image_link(manifest, self.output_path, self.output_url))
        self._rivya_manifest = manifest
        return manifest

    def lineage_reference_items(self) -> object:
        """The reference items as rendered: OpenLineage inputs."""
        return self.reference_media_items

    def label_map_index(self, context: Context) -> None:
        """A mapped generate task shows its ``output_name`` (e.g. a product key), else the start
        of its prompt, instead of its map index."""
        from typing import cast

        from rivya_provider.observability import label_map_index

        label_map_index(cast("dict[str, Any]", context), self.output_name or self.prompt)

    def _build_request(self, client_request_id: str | None) -> GenerationRequest:
        """The request from this task's arguments, validated locally; nothing is sent."""
        from rivya_provider.request_builder import build_request

        return build_request(
            model=self.model,
            prompt=self.prompt,
            image_size=self.image_size,
            output_format=self.output_format,
            model_params=self.model_params,
            reference_media_items=self.reference_media_items,
            client_request_id=client_request_id,
        )

    def _base_key(self, request: GenerationRequest, context: Context) -> str:
        """The first ``Idempotency-Key`` of this task instance's series (checked)."""
        from rivya_provider.api.idempotency import check_idempotency_key, derive_idempotency_key
        from rivya_provider.generation_task import airflow_identity

        if self.idempotency_key is not None:
            return check_idempotency_key(self.idempotency_key, series=True)
        return derive_idempotency_key(airflow_identity(context), request.content_sha256())

    def _submit(
        self, client: RivyaClient, request: GenerationRequest, base_key: str, context: Context
    ) -> Generation:
        """Pay for this task instance's generation at most once (``api.idempotency``).

        The base key comes from the Airflow identity and the body hash, never the try number,
        so a retry replays. On Airflow 3.3+ the submission is also kept in the task state
        store, and a retry reattaches to it with one GET.
        """
        from rivya_provider.compat import task_state_store

        store = task_state_store(context)
        previous = store.get(STATE_STORE_KEY) if store is not None else None
        submission = client.submit_generation(request, base_key, previous=previous)
        generation = submission.generation
        if store is not None:
            store.set(STATE_STORE_KEY, submission.record())
        if submission.reattached:
            self.log.info(
                "Reattached to Rivya generation %s (%s) from an earlier try",
                generation.id,
                generation.status,
            )
        else:
            self.log.info(
                "Submitted Rivya generation %s (model %s, %s credits reserved, "
                "client_request_id %s%s)",
                generation.id,
                generation.model,
                generation.reserved_credits,
                request.client_request_id,
                ", replayed" if submission.replayed else "",
            )
        self._last_status = generation.status
        return generation

    def _log_status(self, generation: Generation) -> None:
        if self._last_status != generation.status:
            self._last_status = generation.status
            self.log.info("Rivya generation %s is %s", generation.id, generation.status)
