"""Composite a transparent Cycles render over the template's backdrop, in 8-bit sRGB.

Doing the backdrop here rather than in Blender is what makes the brand's hex exact: untouched
backdrop pixels are the hex itself, and the floor shadow darkens it through the render's alpha.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from rendering.colour import hex_to_rgb8, shade
from rendering.templates import Template


def backdrop(template: Template, colour: str, size: tuple[int, int]) -> Image.Image:
    w, h = size
    top = np.array(hex_to_rgb8(colour), dtype=np.float32)
    if template.background == "solid":
        return Image.new("RGBA", size, (*hex_to_rgb8(colour), 255))
    bottom = np.array(hex_to_rgb8(shade(colour, 0.78)), dtype=np.float32)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None] ** 1.6
    rows = np.rint(top * (1 - t) + bottom * t).astype(np.uint8)
    rgb = np.broadcast_to(rows, (h, w, 3))
    alpha = np.full((h, w, 1), 255, dtype=np.uint8)
    return Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA")


def composite(render_png: Path, template: Template, colour: str, png_out: Path, jpg_out: Path) -> None:
    """Write the final PNG and JPEG (quality 92, 4:4:4 so flat colours stay exact)."""
    fg = Image.open(render_png).convert("RGBA")
    out = Image.alpha_composite(backdrop(template, colour, fg.size), fg).convert("RGB")
    out.save(png_out, "PNG", optimize=False)
    out.save(jpg_out, "JPEG", quality=92, subsampling=0)
