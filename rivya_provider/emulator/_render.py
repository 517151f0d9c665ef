"""Deterministic placeholder images rendered with Pillow (imported lazily: an optional extra)."""

from __future__ import annotations

import io
import random
from typing import Any

Colour = tuple[int, int, int]


def _pil() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageStat
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the Rivya emulator renders images with Pillow: "
            "pip install 'airflow-provider-rivya[emulator]'"
        ) from exc
    return Image, ImageDraw, ImageStat


def average_colour(data: bytes) -> Colour:
    """Mean of each RGB channel over all pixels (alpha dropped), rounded half up."""
    image_mod, _, stat_mod = _pil()
    with image_mod.open(io.BytesIO(data)) as img:
        mean = stat_mod.Stat(img.convert("RGB")).mean
    r, g, b = (int(v + 0.5) for v in mean[:3])
    return r, g, b


def frame_width(width: int, height: int) -> int:
    """Width of the outer frame that carries the reference colour."""
    return min(width, height) // 8


def render_image(
    *,
    width: int,
    height: int,
    fmt: str,
    seed: bytes,
    prompt: str,
    frame_colour: Colour | None = None,
) -> bytes:
    """Render a ``width`` x ``height`` PNG or JPEG, identical for identical arguments.

    The outer frame (:func:`frame_width` pixels on each side) is ``frame_colour`` when given
    (the reference image's average colour), else a colour drawn from ``seed``. The inside is a
    seeded gradient with a few shapes and the start of the prompt.
    """
    image_mod, draw_mod, _ = _pil()
    rng = random.Random(int.from_bytes(seed[:16], "big"))

    def colour() -> Colour:
        return rng.randrange(256), rng.randrange(256), rng.randrange(256)

    frame = frame_colour if frame_colour is not None else colour()
    img = image_mod.new("RGB", (width, height), frame)
    margin = frame_width(width, height)
    inner = (width - 2 * margin, height - 2 * margin)
    mask = image_mod.linear_gradient("L").resize(inner)
    gradient = image_mod.composite(
        image_mod.new("RGB", inner, colour()), image_mod.new("RGB", inner, colour()), mask
    )
    img.paste(gradient, (margin, margin))
    draw = draw_mod.Draw(img)
    for _ in range(4):
        x0 = margin + rng.randrange(inner[0] // 2)
        y0 = margin + rng.randrange(inner[1] // 2)
        x1 = x0 + rng.randrange(inner[0] // 8, inner[0] // 2)
        y1 = y0 + rng.randrange(inner[1] // 8, inner[1] // 2)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=colour())
    draw.text((margin + 8, margin + 8), prompt[:80], fill=(255, 255, 255))
    out = io.BytesIO()
    if fmt == "jpeg":
        img.save(out, format="JPEG", quality=90)
    else:
        img.save(out, format="PNG", compress_level=1)
    return out.getvalue()
