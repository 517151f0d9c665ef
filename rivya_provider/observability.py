"""What Airflow's UI and downstream DAGs see of a Rivya task: map labels, the extra link's
target, and Asset event metadata.

Shared by the generate, batch and sensor tasks; plain Airflow context handling, no API calls.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = [
    "LINK_XCOM_KEY",
    "MAP_LABEL_KEY",
    "MAX_LISTED_PATHS",
    "check_output_url",
    "generation_summary",
    "image_link",
    "label_map_index",
    "publish_to_outlets",
    "push_link",
    "served_url",
]

#: XCom key of the address the task's extra link opens (read by ``rivya_provider.links``).
LINK_XCOM_KEY = "rivya_link"

#: Context key of the label a mapped Rivya task shows instead of its map index.
MAP_LABEL_KEY = "rivya_map_label"
#: Most stored paths listed in one Asset event (a batch lists its index file instead).
MAX_LISTED_PATHS = 20
#: Longest label shown for a mapped task.
MAX_LABEL = 40


def label_map_index(context: MutableMapping[str, Any], label: object) -> None:
    """Show ``label`` (e.g. the start of the prompt, an item key) instead of the map index of a
    mapped task, unless the DAG author gave a ``map_index_template`` of their own.

    Airflow renders ``context["map_index_template"]`` when the task ends, with this context:
    the label goes in as data (a prompt holding ``{{`` is never rendered as a template).
    """
    ti = context.get("ti")
    if getattr(ti, "map_index", -1) in (None, -1) or context.get("map_index_template"):
        return
    text = " ".join(str(label).split())
    if not text:
        return
    context[MAP_LABEL_KEY] = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    context["map_index_template"] = "{{ " + MAP_LABEL_KEY + " }}"


def publish_to_outlets(
    context: Mapping[str, Any], outlets: object, summary: Mapping[str, Any]
) -> None:
    """Attach ``summary`` to the event of every Asset in the task's ``outlets``, so a downstream
    DAG reads what changed (``triggering_asset_events[asset][-1].extra``).

    Only the last part of a deferred task sends its events, so this runs when the images are
    stored, in the same run segment that returns.
    """
    from airflow.sdk import Asset

    events = context.get("outlet_events")
    if events is None or not isinstance(outlets, (list, tuple)):
        return
    for outlet in outlets:
        if isinstance(outlet, Asset):
            events[outlet].extra.update({"rivya": dict(summary)})


def generation_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The Asset event extra of one generation: ids, stored paths (capped) and credits."""
    paths = [image.get("path") for image in manifest.get("images", []) if image.get("path")]
    return {
        "generation_id": manifest.get("generation_id"),
        "model": manifest.get("model"),
        "final_credits": manifest.get("final_credits"),
        "paths": paths[:MAX_LISTED_PATHS],
        "images": len(manifest.get("images", [])),
    }


def check_output_url(output_url: object, field: str = "output_url") -> None:
    """``None``, or an absolute ``http(s)://`` address with a host.

    :raises RivyaValidationError: naming ``field`` and the rule.
    """
    from rivya_provider.api.errors import RivyaValidationError

    if output_url is None:
        return
    parts = urlsplit(output_url) if isinstance(output_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise RivyaValidationError(
            f"{field}: must be the http:// or https:// address where output_path is served, "
            f"e.g. https://cdn.example.com/catalogue (got {output_url!r})",
            field=field,
        )
    if parts.query or parts.fragment:
        raise RivyaValidationError(
            f"{field}: must not carry a query or fragment (stored names are appended to it)",
            field=field,
        )


def served_url(path: object, output_path: object, output_url: str | None) -> str | None:
    """Where a browser finds the stored file ``path``: ``output_url`` followed by the file's place
    under ``output_path``; ``None`` without ``output_url`` or for a file outside that folder."""
    if not (isinstance(path, str) and output_url and output_path is not None):
        return None
    from rivya_provider.storage import as_storage_path

    root = str(as_storage_path(output_path)).rstrip("/") + "/"  # type: ignore[arg-type]
    if not path.startswith(root):
        return None
    return output_url.rstrip("/") + "/" + quote(path[len(root) :])


def image_link(manifest: Mapping[str, Any], output_path: object, output_url: str | None) -> str:
    """The address the "Rivya image" link opens: the first stored image where ``output_url``
    serves it, else the primary result URL (signed by Rivya; it may expire), else ``""``."""
    for image in manifest.get("images", []):
        url = served_url(image.get("path"), output_path, output_url)
        if url:
            return url
    return str(manifest.get("primary_url") or "")


def push_link(context: Mapping[str, Any], url: str) -> None:
    """Record the extra link's target for the finished task (an XCom of its own, so the link
    works with ``do_xcom_push=False`` too)."""
    if url:
        context["ti"].xcom_push(key=LINK_XCOM_KEY, value=url)
