"""One generation request from operator arguments: merged, validated, nothing sent.

Shared by the generate operator (its arguments) and the batch operator (each item over the
batch-wide defaults), so both name a bad field the same way before any request or credit.
Imported at run time only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rivya_provider.api.errors import RivyaValidationError

if TYPE_CHECKING:
    from rivya_provider.api.models import GenerationRequest

__all__ = ["as_reference_items", "build_request"]


def as_reference_items(
    items: object, field: str = "reference_media_items"
) -> list[dict[str, Any]] | None:
    """Accept one upload result or a list of them (``upload.output`` plugs straight in)."""
    if items is None:
        return None
    if isinstance(items, Mapping):
        return [dict(items)]
    if isinstance(items, (list, tuple)) and all(isinstance(item, Mapping) for item in items):
        return [dict(item) for item in items]
    raise RivyaValidationError(
        f"{field}: must be one item dict (what RivyaFileUploadOperator returns) "
        f"or a list of them (got {type(items).__name__} {items!r:.60})",
        field=field,
    )


def build_request(
    *,
    model: str,
    prompt: str | None,
    image_size: str | None = None,
    output_format: str | None = None,
    model_params: object = None,
    reference_media_items: object = None,
    client_request_id: str | None = None,
) -> GenerationRequest:
    """Merge the arguments into one request and validate it locally; send nothing.

    ``image_size``, ``output_format`` and ``reference_media_items`` may also come inside
    ``model_params``, but not twice with different values.

    :raises RivyaValidationError: naming the argument (or the param) and the rule.
    """
    from rivya_provider.api.models import GenerationRequest

    if model_params is not None and not isinstance(model_params, Mapping):
        raise RivyaValidationError(
            "model_params: must be a dict of model parameters (got "
            f"{type(model_params).__name__} {model_params!r:.60})",
            field="model_params",
        )
    params: dict[str, Any] = dict(model_params or {})
    explicit = {
        "image_size": image_size,
        "output_format": output_format,
        "referenceMediaItems": as_reference_items(reference_media_items),
    }
    for name, value in explicit.items():
        if value is None:
            continue
        argument = "reference_media_items" if name == "referenceMediaItems" else name
        if name in params and params[name] != value:
            raise RivyaValidationError(
                f"{argument}: given both as an argument ({value!r}) and in "
                f"model_params ({params[name]!r}); give it once",
                field=argument,
            )
        params[name] = value
    return GenerationRequest(
        model=model, prompt=prompt, params=params, client_request_id=client_request_id
    )
