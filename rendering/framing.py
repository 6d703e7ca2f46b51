"""Camera placement: put the camera on a preset direction at the distance where the product fills
its share of the frame, for any aspect. Pure numpy, so it is tested without Blender."""

from __future__ import annotations

import math

import numpy as np

SENSOR_MM = 36.0


def fields_of_view(lens_mm: float, width: int, height: int) -> tuple[float, float]:
    """Horizontal and vertical field of view (radians); the sensor spans the frame's longer side."""
    long_fov = 2 * math.atan(SENSOR_MM / 2 / lens_mm)
    if width >= height:
        return long_fov, 2 * math.atan(math.tan(long_fov / 2) * height / width)
    return 2 * math.atan(math.tan(long_fov / 2) * width / height), long_fov


def camera_basis(elevation_deg: float, azimuth_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (towards camera, right, up) for a camera looking at the origin. Front is -Y."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    to_cam = np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
    forward = -to_cam
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return to_cam, right, up


def fit_distance(
    corners: np.ndarray,
    target: np.ndarray,
    elevation_deg: float,
    azimuth_deg: float,
    lens_mm: float,
    width: int,
    height: int,
    fill: float,
) -> float:
    """Smallest camera distance at which every bbox corner lies inside ``fill`` of the frame."""
    to_cam, right, up = camera_basis(elevation_deg, azimuth_deg)
    hfov, vfov = fields_of_view(lens_mm, width, height)
    tan_h, tan_v = math.tan(hfov / 2) * fill, math.tan(vfov / 2) * fill

    def fits(d: float) -> bool:
        rel = corners - (target + d * to_cam)
        depth = rel @ -to_cam
        if np.any(depth <= 1e-6):
            return False
        return bool(np.all(np.abs(rel @ right) / depth <= tan_h) and np.all(np.abs(rel @ up) / depth <= tan_v))

    lo, hi = 1e-3, 1.0
    while not fits(hi):
        hi *= 2
        if hi > 1e6:
            raise ValueError("cannot frame the product: bounding box is degenerate")
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi
