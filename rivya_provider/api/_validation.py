"""Local validation helpers: pydantic errors as one RivyaValidationError, UTF-8-safe text."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from rivya_provider.api.errors import RivyaValidationError

__all__ = ["accepted_keys", "check_encodable", "validation_error_from_pydantic"]


def accepted_keys(spec: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in spec.model_fields.items()]


def validation_error_from_pydantic(
    exc: ValidationError,
    *,
    prefix: str = "",
    model: str | None = None,
    accepted: list[str] | None = None,
) -> RivyaValidationError:
    """One message naming each offending field and its rule, e.g. ``params.image_size: ...``."""
    parts: list[str] = []
    fields: list[str] = []
    for error in exc.errors(include_url=False):
        field = _field_name(prefix, error["loc"])
        fields.append(field)
        if field == "files" and error["type"] == "extra_forbidden":
            parts.append(
                "files: is not accepted; put reference media in params.referenceMediaItems"
            )
            continue
        parts.append(f"{field}: {_describe(error, model, accepted)}")
    message = "; ".join(parts) or "invalid request"
    return RivyaValidationError(message, field=fields[0] if fields else (prefix or None))


def _field_name(prefix: str, loc: tuple[int | str, ...]) -> str:
    name = prefix
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name = f"{name}.{part}" if name else part
    return name or "request"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _choices(expected: str) -> list[str]:
    # pydantic renders literal choices as "'a', 'b' or 'c'".
    return [part.strip().strip("'\"") for part in expected.replace(" or ", ", ").split(",")]


def _describe(error: ErrorDetails, model: str | None, accepted: list[str] | None) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    if kind == "literal_error":
        choices = _choices(str(ctx.get("expected", "")))
        if len(choices) == 1:
            return f"must be {choices[0]!r} (got {_short(value)})"
        return f"must be one of {', '.join(choices)} (got {_short(value)})"
    if kind == "extra_forbidden":
        owner = f"model {model}" if model else "this request"
        known = f"; accepted: {', '.join(accepted)}" if accepted else ""
        return f"is not accepted by {owner} (got {_short(value)}{known})"
    if kind == "missing":
        return "is required"
    if kind == "too_long":
        limit = ctx.get("max_length")
        noun = "item" if limit == 1 else "items"
        return f"must have at most {limit} {noun} (got {ctx.get('actual_length')})"
    if kind == "string_too_long":
        got = len(value) if isinstance(value, str) else "?"
        return f"must be at most {ctx.get('max_length')} characters (got {got})"
    if kind == "string_too_short":
        got = len(value) if isinstance(value, str) else "?"
        limit = ctx.get("min_length")
        noun = "character" if limit == 1 else "characters"
        return f"must be at least {limit} {noun} (got {got})"
    message = error["msg"].removeprefix("Value error, ")
    return f"{message[:1].lower()}{message[1:]} (got {_short(value)})"


def check_encodable(field: str, value: Any) -> None:
    """Refuse text that cannot be sent as UTF-8 (a lone surrogate), naming where it is."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise RivyaValidationError(
                f"{field}: is not valid Unicode text (a lone surrogate at character {exc.start})",
                field=field,
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_encodable(f"{field}.{key}", key)
            check_encodable(f"{field}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_encodable(f"{field}[{index}]", item)
