"""The background plate of a lifestyle scene: the environment HDRI as the camera sees it, out of focus.

Cycles renders the product, its plinth and its shadow on a transparent film (so QA and the composite work
as for studio scenes); the place around it is drawn here from the same equirectangular HDRI that lights
it, through the same camera, tone-mapped as Blender's view transform does (Khronos PBR Neutral) and
blurred as a lens focused on the product blurs what lies metres behind it. Pure numpy: tested without
Blender, and a fraction of a second at any size.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from rendering.framing import SafeZone, camera_basis, fields_of_view

#: How far out of focus the place is: the blur's radius as a share of the frame's longer side.
BLUR_SHARE = 0.006


def view_directions(
    elevation_deg: float, azimuth_deg: float, lens_mm: float, width: int, height: int, zone: SafeZone
) -> np.ndarray:
    """Unit world directions (H x W x 3) of each pixel's ray, for the camera ``framing`` places: the inverse
    of ``framing.project``, with the safe zone's lens shift."""
    to_cam, right, up = camera_basis(elevation_deg, azimuth_deg)
    hfov, vfov = fields_of_view(lens_mm, width, height)
    x = (np.arange(width) + 0.5) / width * 2 - 1 - zone.centre_x
    y = 1 - (np.arange(height) + 0.5) / height * 2 - zone.centre_y
    rays = (
        -to_cam[None, None, :]
        + right[None, None, :] * (x[None, :, None] * math.tan(hfov / 2))
        + up[None, None, :] * (y[:, None, None] * math.tan(vfov / 2))
    )
    return rays / np.linalg.norm(rays, axis=2, keepdims=True)


def sample_equirect(pixels: np.ndarray, directions: np.ndarray, turn_deg: float = 0.0) -> np.ndarray:
    """Look up directions in an equirectangular image (rows from the top), bilinear, with Blender's mapping
    (u = 0.5 - atan2(y, x) / 2 pi, v = acos(z) / pi), the world turned by ``turn_deg`` about Z as the world's
    mapping node turns it. Checked against Cycles' own background: 1-2 levels of 255 apart on average."""
    h, w, _ = pixels.shape
    d = directions
    a = math.radians(turn_deg)
    dx = d[..., 0] * math.cos(a) - d[..., 1] * math.sin(a)
    dy = d[..., 0] * math.sin(a) + d[..., 1] * math.cos(a)
    u = (0.5 - np.arctan2(dy, dx) / (2 * math.pi)) % 1.0
    v = np.arccos(np.clip(d[..., 2], -1, 1)) / math.pi  # 0 at the zenith, the image's top row
    fx, fy = u * w - 0.5, v * h - 0.5
    x0, y0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
    tx, ty = (fx - x0)[..., None], (fy - y0)[..., None]
    x0, x1 = x0 % w, (x0 + 1) % w
    y0, y1 = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = pixels[y0, x0] * (1 - tx) + pixels[y0, x1] * tx
    bottom = pixels[y1, x0] * (1 - tx) + pixels[y1, x1] * tx
    return top * (1 - ty) + bottom * ty


def pbr_neutral(linear: np.ndarray) -> np.ndarray:
    """Khronos PBR Neutral tone mapping of scene-linear Rec.709: base colours pass up to about 0.8, brighter
    values roll off to white instead of clipping (the view transform the product renders through)."""
    start, desaturation = 0.8 - 0.04, 0.15
    c = np.maximum(linear, 0.0)
    x = c.min(axis=-1, keepdims=True)
    c = c - np.where(x < 0.08, x - 6.25 * x * x, 0.04)
    peak = c.max(axis=-1, keepdims=True)
    d = 1.0 - start
    new_peak = 1.0 - d * d / (peak + d - start)
    compressed = c * (new_peak / np.maximum(peak, 1e-9))
    g = 1.0 - 1.0 / (desaturation * (peak - new_peak) + 1.0)
    compressed = compressed * (1 - g) + new_peak * g
    return np.where(peak < start, c, compressed)


def srgb8(display_linear: np.ndarray) -> np.ndarray:
    c = np.clip(display_linear, 0.0, 1.0)
    encoded = np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.rint(encoded * 255).astype(np.uint8)


def plate(
    pixels: np.ndarray,
    elevation_deg: float,
    azimuth_deg: float,
    lens_mm: float,
    width: int,
    height: int,
    zone: SafeZone,
    strength: float,
    exposure: float,
    turn_deg: float = 0.0,
) -> Image.Image:
    """The environment behind the product as an RGBA image of the frame's size, out of focus."""
    directions = view_directions(elevation_deg, azimuth_deg, lens_mm, width, height, zone)
    linear = sample_equirect(pixels, directions, turn_deg) * strength * 2.0**exposure
    image = Image.fromarray(srgb8(pbr_neutral(linear)), "RGB")
    image = image.filter(ImageFilter.GaussianBlur(BLUR_SHARE * max(width, height)))
    return image.convert("RGBA")
