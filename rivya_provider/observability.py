"""What Airflow's UI and downstream DAGs see of a Rivya task: map labels and Asset event metadata.

Shared by the generate, batch and sensor tasks; plain Airflow context handling, no API calls.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["MAP_LABEL_KEY", "MAX_LISTED_PATHS", "label_map_index", "publish_to_outlets"]

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
