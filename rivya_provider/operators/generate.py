"""RivyaGenerateImageOperator: validate, submit once, wait, store images, return a manifest."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from rivya_provider._compat import default_deferrable

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.models import Generation, GenerationRequest
    from rivya_provider.api.polling import PollSchedule


class RivyaGenerateImageOperator(BaseOperator):
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
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "model_params": "json",
        "reference_media_items": "json",
    }
    ui_color = "#f4e3ff"

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self._last_status: str | None = None

    # -- execute ----------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, submit once (or reattach), then finish inline, wait, or defer."""
        from rivya_provider.api.errors import RivyaError
        from rivya_provider.operators import _generation as gen

        client_request_id = self._client_request_id(context)
        request = self._build_request(client_request_id)
        try:
            with self._hook().get_client() as client:
                generation = self._submit(client, request, context)
                context["ti"].xcom_push(key=gen.GENERATION_ID_XCOM_KEY, value=generation.id)
                if not self.wait_for_completion:
                    return gen.build_manifest(generation, [], client_request_id)
                if not generation.is_terminal:
                    generation = client.get_generation(generation.id)
                    self._log_status(generation)
                if not generation.is_terminal:
                    deadline = time.time() + self._timeout_seconds()
                    if self.deferrable:
                        self._defer(generation.id, deadline)
                    generation = client.wait_for_generation(
                        generation.id,
                        deadline=deadline,
                        on_status=self._log_status,
                        poll=_poll_schedule(self.poll_interval),
                    )
                return self._finish(client, generation, client_request_id)
        except RivyaError as exc:
            raise gen.to_airflow_error(exc) from exc

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger: validate its event, then store the images."""
        from rivya_provider.operators._generation import complete

        return complete(
            event,
            rivya_conn_id=self.rivya_conn_id,
            output_path=self.output_path,
            output_format=self._output_format(),
            client_request_id=self._client_request_id(context),
            log=self.log,
        )

    # -- steps ------------------------------------------------------------------------------

    def _hook(self) -> Any:
        from rivya_provider.hooks.rivya import RivyaHook

        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    def _client_request_id(self, context: Context) -> str:
        from rivya_provider.operators._generation import (
            airflow_identity,
            default_client_request_id,
        )

        return self.client_request_id or default_client_request_id(airflow_identity(context))

    def _timeout_seconds(self) -> float:
        if isinstance(self.timeout, timedelta):
            return self.timeout.total_seconds()
        return float(self.timeout)

    def _build_request(self, client_request_id: str) -> GenerationRequest:
        """Merge the arguments into one request and validate it locally; send nothing."""
        from rivya_provider._compat import AirflowFailException
        from rivya_provider.api.errors import RivyaValidationError
        from rivya_provider.api.models import GenerationRequest

        params: dict[str, Any] = dict(self.model_params or {})
        explicit = {
            "image_size": self.image_size,
            "output_format": self.output_format,
            "referenceMediaItems": _as_item_list(self.reference_media_items),
        }
        for name, value in explicit.items():
            if value is None:
                continue
            if name in params and params[name] != value:
                raise AirflowFailException(
                    f"{_argument_name(name)}: given both as an argument ({value!r}) and in "
                    f"model_params ({params[name]!r}); give it once"
                )
            params[name] = value
        try:
            return GenerationRequest(
                model=self.model,
                prompt=self.prompt,
                params=params,
                client_request_id=client_request_id,
            )
        except RivyaValidationError as exc:
            raise AirflowFailException(f"Invalid Rivya request: {exc.message}") from None

    def _submit(
        self, client: RivyaClient, request: GenerationRequest, context: Context
    ) -> Generation:
        """Create the generation exactly once per task instance and request body.

        The ``Idempotency-Key`` is derived from the Airflow identity and the body hash, never the
        try number: a retry replays the same generation. When the replayed generation had failed
        (its credits were released), the next key in the series creates a fresh one. On Airflow
        3.3+ the generation id is also kept in the task state store and reattached on retry.
        """
        from rivya_provider._compat import task_state_store
        from rivya_provider.operators import _generation as gen

        body_sha256 = request.body_sha256()
        base_key = self.idempotency_key or gen.derive_idempotency_key(
            gen.airflow_identity(context), body_sha256
        )
        store = task_state_store(context)
        round_number = 0
        saved = store.get(gen.STATE_STORE_KEY) if store is not None else None
        if isinstance(saved, dict) and saved.get("base_key") == base_key:
            previous = client.get_generation(str(saved["generation_id"]))
            if previous.status != "failed":
                self.log.info(
                    "Reattaching to Rivya generation %s (%s) from an earlier try",
                    previous.id,
                    previous.status,
                )
                return previous
            saved_round = saved.get("round", 0)
            round_number = (saved_round if isinstance(saved_round, int) else 0) + 1

        started = time.time()
        while True:
            key = gen.resubmission_key(base_key, round_number)
            created = client.create_generation(request, idempotency_key=key)
            generation = created.generation
            if generation.status != "failed" or not gen.is_earlier_attempt(created, started):
                break
            if round_number >= gen.MAX_RESUBMISSIONS:
                break  # finishes as the failed generation it is; never loop without end
            self.log.info(
                "Generation %s replayed for this task had failed (credits released); "
                "submitting a fresh one",
                generation.id,
            )
            round_number += 1
        if store is not None:
            store.set(
                gen.STATE_STORE_KEY,
                {"generation_id": generation.id, "base_key": base_key, "round": round_number},
            )
        self.log.info(
            "Submitted Rivya generation %s (model %s, %s credits reserved, client_request_id %s%s)",
            generation.id,
            generation.model,
            generation.reserved_credits,
            request.client_request_id,
            ", replayed" if created.replayed else "",
        )
        self._last_status = generation.status
        return generation

    def _log_status(self, generation: Generation) -> None:
        if self._last_status != generation.status:
            self._last_status = generation.status
            self.log.info("Rivya generation %s is %s", generation.id, generation.status)

    def _defer(self, generation_id: str, deadline: float) -> None:
        from rivya_provider.triggers.generation import RivyaGenerationTrigger

        self.defer(
            trigger=RivyaGenerationTrigger(
                generation_id=generation_id,
                deadline=deadline,
                rivya_conn_id=self.rivya_conn_id,
                poll=_poll_settings(self.poll_interval),
            ),
            method_name="execute_complete",
        )

    def _finish(
        self, client: RivyaClient, generation: Generation, client_request_id: str
    ) -> dict[str, Any]:
        from rivya_provider.operators._generation import finish

        return finish(
            client,
            generation,
            output_path=self.output_path,
            output_format=self._output_format(),
            client_request_id=client_request_id,
            log=self.log,
        )

    def _output_format(self) -> str | None:
        if self.output_format:
            return self.output_format
        value = (self.model_params or {}).get("output_format")
        return str(value) if value else ("png" if self.model == "qwen-image" else None)


def _as_item_list(
    items: dict[str, Any] | list[dict[str, Any]] | None,
) -> list[dict[str, Any]] | None:
    """Accept one upload result or a list of them (``upload.output`` plugs straight in)."""
    if items is None:
        return None
    if isinstance(items, dict):
        return [items]
    return list(items)


def _argument_name(param: str) -> str:
    return "reference_media_items" if param == "referenceMediaItems" else param


def _poll_schedule(poll_interval: float | None) -> PollSchedule | None:
    from rivya_provider.api.polling import PollSchedule

    settings = _poll_settings(poll_interval)
    return None if settings is None else PollSchedule.from_dict(settings)


def _poll_settings(poll_interval: float | None) -> dict[str, float] | None:
    """Operator ``poll_interval`` as a plain schedule dict, or ``None`` for the shared schedule."""
    if poll_interval is None:
        return None
    return {
        "first_delay": float(poll_interval),
        "interval": float(poll_interval),
        "factor": 1.5,
        "max_interval": max(15.0, float(poll_interval)),
    }
