"""RivyaFileUploadOperator: upload a reference file, checked locally first, for a generation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from rivya_provider.airflow_errors import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from rivya_provider.hooks.rivya import RivyaHook


class RivyaFileUploadOperator(BaseOperator):
    """Upload a reference image to Rivya and return an item for ``reference_media_items``.

    The file is checked before any request: it exists and is a readable, non-empty file within
    the model's size limit, and the MIME type sniffed from its bytes (never its name) is one the
    model takes for ``kind``. It is streamed, never read whole into memory. Uploads cost no
    credits, so an Airflow retry simply uploads again.

    Returns (XCom) the reference item in the API's shape: ``url``, ``kind``, ``name``,
    ``mimeType``, plus ``durationToken`` and ``file_id`` when known, so
    ``RivyaGenerateImageOperator(reference_media_items=upload.output)`` needs no glue. It also
    carries ``sha256``, the digest of the bytes uploaded: the generate operator keys its
    idempotency on it instead of the URL, so a re-run that uploads the same file again (a new
    URL) reattaches to the generation it paid for instead of paying again.

    :param source: the file (templated): a local path, a ``file://`` URI, or any
        ``ObjectStoragePath`` URI (``s3://``, ``gs://``... when that filesystem is installed).
    :param kind: ``image``, ``video`` or ``audio`` (templated). Default ``image``.
    :param model: model whose upload rules apply (templated); ``None`` applies the API's default
        limits. Default ``qwen-image`` (images only: jpeg, png, webp, 10 MB).
    :param name: file name sent to Rivya (templated); default: the source's file name.
    :param client_request_id: trace id sent with the upload (templated), at most 128 characters.
    :param rivya_conn_id: Airflow connection of type ``rivya``.
    """

    template_fields: Sequence[str] = ("source", "kind", "model", "name", "client_request_id")
    ui_color = "#f4e3ff"

    def __init__(
        self,
        *,
        source: str | ObjectStoragePath,
        kind: str = "image",
        model: str | None = "qwen-image",
        name: str | None = None,
        client_request_id: str | None = None,
        rivya_conn_id: str = "rivya_default",
        retries: int | None = DEFAULT_RETRIES,
        retry_delay: timedelta | float = DEFAULT_RETRY_DELAY,
        **kwargs: Any,
    ) -> None:
        super().__init__(retries=retries, retry_delay=retry_delay, **kwargs)
        self.source = source
        self.kind = kind
        self.model = model
        self.name = name
        self.client_request_id = client_request_id
        self.rivya_conn_id = rivya_conn_id

    def rivya_hook(self) -> RivyaHook:
        """The hook of this task's ``rivya_conn_id``."""
        from rivya_provider.hooks.rivya import RivyaHook

        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Check the file locally, stream it to Rivya, return the reference item."""
        from rivya_provider.airflow_errors import to_airflow_error
        from rivya_provider.api.errors import RivyaError, RivyaValidationError
        from rivya_provider.compat import AirflowFailException
        from rivya_provider.storage import as_storage_path

        path = as_storage_path(self.source)
        name = self.name or path.name
        try:
            _check_is_readable_file(path)
            with path.open("rb") as stream, self.rivya_hook().get_client() as client:
                # Checked (size, MIME type sniffed from the bytes) before anything is sent.
                uploaded = client.upload_file(
                    stream,
                    kind=self.kind,
                    model=self.model,
                    name=name,
                    client_request_id=self.client_request_id,
                )
        except RivyaValidationError as exc:
            raise AirflowFailException(f"Cannot upload {self.source}: {exc.message}") from None
        except RivyaError as exc:
            raise to_airflow_error(exc) from exc
        checked = uploaded.check
        self.log.info(
            "Uploaded %s (%s bytes, %s): file id %s, url %s",
            name,
            checked.size_bytes if checked else "?",
            checked.mime_type if checked else uploaded.mime_type,
            uploaded.id,
            uploaded.url,
        )
        item = uploaded.as_reference().to_api()
        if uploaded.id:
            item["file_id"] = uploaded.id
        if uploaded.sha256:
            # Stands for the file in the generation's idempotency key (never sent to the API).
            item["sha256"] = uploaded.sha256
        self._rivya_item = item
        return item

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (called only by its provider): the source file in, the file Rivya keeps
        out (its URL without the signature), the same dataset a generation then reads."""
        from rivya_provider.lineage import upload_lineage

        return upload_lineage(self.source, getattr(self, "_rivya_item", None))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage of a failed upload: the source file only."""
        from rivya_provider.lineage import upload_lineage

        return upload_lineage(self.source, None)


def _check_is_readable_file(path: ObjectStoragePath) -> None:
    """Exists, is a regular file, and (locally) is readable; the message names the rule."""
    from rivya_provider.api.errors import RivyaValidationError

    def refuse(rule: str) -> RivyaValidationError:
        return RivyaValidationError(f"source: {rule}", field="source")

    if not path.exists():
        raise refuse(f"{path} does not exist")
    if path.is_dir():
        raise refuse(f"{path} is a directory, not a file")
    if not path.is_file():
        raise refuse(f"{path} is not a regular file")
    if path.protocol in ("", "file", "local") and not os.access(path.path, os.R_OK):
        raise refuse(f"{path} is not readable")
