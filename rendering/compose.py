"""Composite a transparent Cycles render over the template's backdrop, in 8-bit sRGB.

Doing the backdrop here rather than in Blender is what makes the brand's hex exact: untouched
backdrop pixels are the hex itself, and the floor shadow darkens it through the render's alpha.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from creative.vocabulary import Template
from rendering.colour import hex_to_rgb8, shade

FLOOR_SHADE = 0.9  # a tabletop a little darker than the wall behind it
HORIZON_SOFTNESS = 0.025  # share of the frame height over which floor and wall blend
SHADOW_FLOOR = 0.03  # shadow opacity at or below which the backdrop stays untouched (8 levels of 255)


def backdrop(
    template: Template, colour: str, size: tuple[int, int], accent: str | None = None, horizon: float = 1.0
) -> Image.Image:
    """The backdrop: the colour flat, or a vertical gradient to the accent; a ``floor`` ground adds a
    tabletop below ``horizon`` (share of the height from the top)."""
    w, h = size
    top = np.array(hex_to_rgb8(colour), dtype=np.float32)
    rows = np.broadcast_to(top, (h, 3)).copy()
    if template.background == "gradient":
        bottom = np.array(hex_to_rgb8(accent or shade(colour, 0.78)), dtype=np.float32)
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None] ** 1.6
        rows = top * (1 - t) + bottom * t
    if template.ground == "floor":
        floor = np.array(hex_to_rgb8(shade(colour, FLOOR_SHADE)), dtype=np.float32)
        y = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
        blend = np.clip((y - horizon) / HORIZON_SOFTNESS + 0.5, 0.0, 1.0)
        rows = rows * (1 - blend) + floor * blend
    rgb = np.broadcast_to(np.rint(rows).astype(np.uint8)[:, None, :], (h, w, 3))
    alpha = np.full((h, w, 1), 255, dtype=np.uint8)
    return Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA")


def composite(
    render_png: Path,
    template: Template,
    colour: str,
    accent: str | None = None,
    horizon: float = 1.0,
    plate: Image.Image | None = None,
) -> tuple[Image.Image, list[float] | None]:
    """The render over its backdrop (or over ``plate``, a lifestyle scene's place), as an RGB image, and
    where the product landed in it."""
    with Image.open(render_png) as raw:
        fg = np.asarray(raw.convert("RGBA")).copy()
    alpha = fg[..., 3].astype(np.float32) / 255.0
    # the floor catches a faint shadow far from the product (it hides a sliver of the studio's sky from
    # every point); ramping the weakest shadow to nothing keeps the open backdrop the exact hex
    alpha = np.clip((alpha - SHADOW_FLOOR) / (1.0 - SHADOW_FLOOR), 0.0, 1.0)
    # the denoiser leaves a speck at times on the frame's outermost pixels (a corner, most often): the two
    # outer rows and columns keep no more shadow than the pixels just inside them
    alpha = _clamp_border(alpha)
    fg[..., 3] = np.rint(alpha * 255).astype(np.uint8)
    layer = Image.fromarray(fg, "RGBA")
    behind = plate if plate is not None else backdrop(template, colour, layer.size, accent, horizon)
    image = Image.alpha_composite(behind, layer).convert("RGB")
    return image, product_box(fg[..., 3])


def _clamp_border(alpha: np.ndarray, width: int = 2) -> np.ndarray:
    inner = alpha.copy()
    h, w = alpha.shape
    if h <= 3 * width or w <= 3 * width:
        return alpha
    out = alpha.copy()
    for i in range(width):
        out[i] = np.minimum(out[i], inner[width + 1])
        out[h - 1 - i] = np.minimum(out[h - 1 - i], inner[h - width - 2])
        out[:, i] = np.minimum(out[:, i], inner[:, width + 1])
        out[:, w - 1 - i] = np.minimum(out[:, w - 1 - i], inner[:, w - width - 2])
    return out


def product_box(alpha: np.ndarray, opaque: int = 250) -> list[float] | None:
    """The product's bounding box (left, top, right, bottom as shares of the frame) from the render's alpha.

    The product renders opaque; the floor shadow is only partly so. None when nothing opaque is in frame.
    """
    ys, xs = np.nonzero(alpha >= opaque)
    if len(xs) == 0:
        return None
    h, w = alpha.shape
    return [round(xs.min() / w, 4), round(ys.min() / h, 4), round((xs.max() + 1) / w, 4), round((ys.max() + 1) / h, 4)]


def save_still(image: Image.Image, png_out: Path, jpg_out: Path) -> None:
    """Write the final PNG and JPEG (quality 92, 4:4:4 so flat colours stay exact)."""
    image.save(png_out, "PNG", optimize=False, compress_level=6)
    image.save(jpg_out, "JPEG", quality=92, subsampling=0)
