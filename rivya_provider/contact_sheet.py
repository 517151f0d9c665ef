"""A batch's contact sheet: ``index.html``, one self-contained page a person reviews by eye.

One tile per item: the thumbnail, the key, the prompt, the status and the credits; a failed item
shows its error, a reused one says so. Images are referenced by their file name (they sit next
to the page), so it works opened from disk, from a mounted bucket or through any static web
server. Thumbnails load lazily with a fixed box, so a sheet of 1,000 items opens fast. Every
string from a prompt, a key or the API is HTML-escaped; the page has no script. Plain text in,
text out: no Airflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

__all__ = ["SHEET_NAME", "render_contact_sheet"]

SHEET_NAME = "index.html"
THUMBNAIL_PX = 220

_STYLE = f"""
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }}
h1 {{ font-size: 1.3rem; margin: 0 0 .3rem; }}
.counts {{ color: #555; margin-bottom: 1rem; }}
.grid {{ display: grid; gap: 12px;
  grid-template-columns: repeat(auto-fill, minmax({THUMBNAIL_PX}px, 1fr)); }}
.tile {{ border: 1px solid #ddd; border-radius: 6px; padding: 8px; margin: 0; background: #fff; }}
.tile img, .tile .missing {{ width: 100%; height: {THUMBNAIL_PX}px; object-fit: contain;
  background: #f4f4f4; display: block; }}
.tile .missing {{ display: flex; align-items: center; justify-content: center; color: #a00; }}
.key {{ font-weight: 600; word-break: break-all; }}
.prompt {{ color: #333; font-size: 12px; max-height: 6em; overflow: auto; white-space: pre-wrap; }}
.status {{ font-size: 12px; }}
.failed {{ border-color: #d33; }} .failed .status {{ color: #a00; font-weight: 600; }}
.reused .status {{ color: #06c; }}
"""


def _text(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _file_name(path: object) -> str | None:
    """The image's name in the sheet's folder, as a relative URL."""
    if not isinstance(path, str) or not path:
        return None
    return quote(path.rstrip("/").rsplit("/", 1)[-1])


def _tile(item: Mapping[str, Any], prompt: str | None) -> str:
    status = str(item.get("status") or "unknown")
    succeeded = status == "succeeded"
    reused = bool(item.get("reused"))
    listed = item.get("images")
    images: list[Any] = listed if isinstance(listed, list) else []
    names = [_file_name(image.get("path")) for image in images if isinstance(image, Mapping)]
    source = next((name for name in names if name), None)
    key = _text(item.get("key"))
    if succeeded and source:
        picture = (
            f'<img src="{source}" alt="{key}" loading="lazy" decoding="async" '
            f'width="{THUMBNAIL_PX}" height="{THUMBNAIL_PX}">'
        )
    else:
        picture = '<div class="missing">no image</div>'
    classes = "tile" + ("" if succeeded else " failed") + (" reused" if reused else "")
    label = status + (" (reused)" if reused else "")
    credits = item.get("final_credits")
    lines = [
        f'<figure class="{classes}" data-key="{key}" data-status="{_text(status)}">',
        picture,
        f'<figcaption><div class="key">{key}</div>',
        f'<div class="status">{_text(label)}'
        + (f" · {_text(credits)} credits" if credits is not None else "")
        + (f" · {len(names)} images" if len(names) > 1 else "")
        + "</div>",
    ]
    if prompt:
        lines.append(f'<div class="prompt">{_text(prompt)}</div>')
    error = item.get("error")
    if isinstance(error, Mapping) and not succeeded:
        message = f"{error.get('code')}: {error.get('message')}"
        lines.append(f'<div class="status error">{_text(message)}</div>')
    lines.append("</figcaption></figure>")
    return "\n".join(lines)


def render_contact_sheet(
    items: Sequence[Mapping[str, Any]],
    prompts: Mapping[str, str],
    summary: Mapping[str, Any] | None = None,
    title: str = "Rivya batch",
) -> str:
    """The page for ``items`` (``index.jsonl`` lines) with each key's prompt from ``prompts``."""
    summary = summary or {}
    counts = ", ".join(
        f"{_text(name)} {_text(summary[name])}"
        for name in ("items", "generated", "reused", "failed", "credits_spent")
        if name in summary
    )
    tiles = "\n".join(_tile(item, prompts.get(str(item.get("key")))) for item in items)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # No script may run here, whatever a prompt holds (a second guard after escaping).
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src * data: file:; style-src 'unsafe-inline'\">\n"
        f"<title>{_text(title)}</title>\n<style>{_STYLE}</style></head>\n"
        f'<body>\n<h1>{_text(title)}</h1>\n<div class="counts">{counts}</div>\n'
        f'<main class="grid">\n{tiles}\n</main>\n</body></html>\n'
    )
