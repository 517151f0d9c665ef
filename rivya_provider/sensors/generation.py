"""RivyaGenerationSensor: wait for a generation submitted earlier, then store its images."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from rivya_provider.compat import default_deferrable
from rivya_provider.generation_task import GenerationTaskMixin
from rivya_provider.links import RivyaImageLink

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


class RivyaGenerationSensor(GenerationTaskMixin, BaseSensorOperator):
    """Wait for a Rivya generation (e.g. one submitted with ``wait_for_completion=False``).

    Returns the same manifest as ``RivyaGenerateImageOperator``. Deferrable (same trigger) or
    classic ``poke``/``reschedule`` mode. A failed generation fails the task.

    :param generation_id: id of the generation to wait for (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='submit', key='generation_id') }}"``.
    :param output_path: folder for the images (templated), local path or ``ObjectStoragePath``
        URI; ``None`` keeps URLs only.
    :param output_format: extension hint when the server sends no content type (templated).
    :param rivya_conn_id: Airflow connection of type ``rivya``.
    :param deferrable: wait in the triggerer. Defaults to ``[operators] default_deferrable``.
    :param poll_interval: initial seconds between checks in deferrable mode; ``None`` uses the
        shared schedule. In poke/reschedule mode ``poke_interval`` applies.
    :param client_request_id: trace id recorded in the manifest (templated).
    :param timeout: seconds (or ``timedelta``) before the sensor gives up (sensor semantics).
    :param output_url: the ``http(s)://`` address where ``output_path`` is served (templated); the
        "Rivya image" link opens the stored image there, else the result URL.
    """

    template_fields: Sequence[str] = (
        "generation_id",
        "output_path",
        "output_format",
        "client_request_id",
        "output_url",
    )
    ui_color = "#f4e3ff"
    operator_extra_links = (RivyaImageLink(),)

    def __init__(
        self,
        *,
        generation_id: str,
        output_path: str | ObjectStoragePath | None = None,
        output_format: str | None = None,
        rivya_conn_id: str = "rivya_default",
        deferrable: bool = default_deferrable(),
        poll_interval: float | None = None,
        client_request_id: str | None = None,
        timeout: timedelta | float = timedelta(minutes=10),
        poke_interval: timedelta | float = 5.0,
        output_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, poke_interval=poke_interval, **kwargs)
        self.generation_id = generation_id
        self.output_path = output_path
        self.output_format = output_format
        self.rivya_conn_id = rivya_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.client_request_id = client_request_id
        self.output_url = output_url

    def execute(self, context: Context) -> Any:
        """Check the arguments, then defer to the trigger, or poke as any sensor does."""
        from rivya_provider.airflow_errors import to_airflow_error
        from rivya_provider.api.errors import RivyaError, RivyaValidationError

        try:
            if not isinstance(self.generation_id, str) or self.generation_id.strip() in (
                "",
                "None",
            ):
                raise RivyaValidationError(
                    f"generation_id: must be a generation id such as task_... (got "
                    f"{self.generation_id!r}); check the template that renders it",
                    field="generation_id",
                )
            self.check_wait_settings()
        except RivyaError as exc:
            raise to_airflow_error(exc) from exc
        if not self.deferrable:
            return super().execute(context)
        self.defer_until_terminal(self.generation_id, time.time() + float(self.timeout))

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One GET: done with the manifest on success, raise on failure, else keep waiting."""
        from rivya_provider.airflow_errors import to_airflow_error
        from rivya_provider.api.errors import RivyaError

        try:
            with self.rivya_hook().get_client() as client:
                generation = client.get_generation(self.generation_id)
                self.log.info("Rivya generation %s is %s", generation.id, generation.status)
                if not generation.finished:
                    return False
                return PokeReturnValue(
                    is_done=True, xcom_value=self.finish(client, generation, context)
                )
        except RivyaError as exc:
            raise to_airflow_error(exc) from exc

    def output_format_hint(self) -> str | None:
        """The ``output_format`` argument."""
        return self.output_format

    def manifest_request_id(self, context: Context) -> str | None:
        """The ``client_request_id`` argument."""
        return self.client_request_id
