"""Camera placement: put the camera on a preset direction at the distance where the product fills
its share of the frame, for any aspect. Pure numpy, so it is tested without Blender."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SafeZone:
    """The part of the frame the product must stay in, in normalised device coordinates (-1..1, y up)."""

    centre_x: float
    centre_y: float
    half_w: float
    half_h: float

    @classmethod
    def from_margins(cls, left: float, top: float, right: float, bottom: float) -> SafeZone:
        x0, x1 = -1 + 2 * left, 1 - 2 * right
        y0, y1 = -1 + 2 * bottom, 1 - 2 * top
        return cls((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2)

    def lens_shift(self, width: int, height: int) -> tuple[float, float]:
        """Blender's camera shift that puts the view axis on the zone's centre (shift is in frame's long side)."""
        long = max(width, height)
        return -self.centre_x * width / (2 * long), -self.centre_y * height / (2 * long)


FULL_FRAME = SafeZone(0.0, 0.0, 1.0, 1.0)


def project(
    points: np.ndarray,
    camera: np.ndarray,
    elevation_deg: float,
    azimuth_deg: float,
    lens_mm: float,
    width: int,
    height: int,
    zone: SafeZone = FULL_FRAME,
) -> np.ndarray:
    """Frame coordinates (-1..1, y up) of world points seen from ``camera``, with the zone's lens shift."""
    to_cam, right, up = camera_basis(elevation_deg, azimuth_deg)
    hfov, vfov = fields_of_view(lens_mm, width, height)
    rel = np.atleast_2d(points) - camera
    depth = rel @ -to_cam
    return np.stack(
        [
            (rel @ right) / depth / math.tan(hfov / 2) + zone.centre_x,
            (rel @ up) / depth / math.tan(vfov / 2) + zone.centre_y,
        ],
        axis=1,
    )


def horizon_from_top(elevation_deg: float, lens_mm: float, width: int, height: int, zone: SafeZone) -> float:
    """Where the floor meets the backdrop, as a share of the frame height from the top (may be outside 0..1)."""
    _, vfov = fields_of_view(lens_mm, width, height)
    v = math.tan(math.radians(elevation_deg)) / math.tan(vfov / 2) + zone.centre_y
    return (1 - v) / 2


def fit_distance(
    corners: np.ndarray,
    target: np.ndarray,
    elevation_deg: float,
    azimuth_deg: float,
    lens_mm: float,
    width: int,
    height: int,
    fill: float,
    zone: SafeZone = FULL_FRAME,
) -> float:
    """Smallest camera distance at which every bbox corner lies inside ``fill`` of the safe zone."""
    to_cam, right, up = camera_basis(elevation_deg, azimuth_deg)
    hfov, vfov = fields_of_view(lens_mm, width, height)
    tan_h = math.tan(hfov / 2) * fill * zone.half_w
    tan_v = math.tan(vfov / 2) * fill * zone.half_h

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


@dataclass(frozen=True)
class Placement:
    """Where the camera ended up: its elevation (may be raised from the preset), distance and position."""

    elevation: float
    distance: float
    camera: np.ndarray
    target: np.ndarray
    fill: float


def box_share(xy: np.ndarray) -> float:
    """How much of the frame's limiting dimension a projected point set spans (0..1)."""
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    return float(max(x1 - x0, y1 - y0) / 2)


def place_camera(
    points: np.ndarray,
    elevation_deg: float,
    azimuth_deg: float,
    lens_mm: float,
    width: int,
    height: int,
    fill: float,
    zone: SafeZone = FULL_FRAME,
    min_camera_z: float = -math.inf,
    stage_points: np.ndarray | None = None,
    min_share: float = 0.0,
    max_fill: float = 0.93,
) -> Placement:
    """Fit the camera on a preset direction, then correct it as a photographer would.

    The camera is raised (2 degrees at a time) until it is at least ``min_camera_z`` high, so it never
    looks from below the floor; the fill grows (up to ``max_fill`` of the zone) until the product spans
    ``min_share`` of the frame's limiting dimension; the stage's own points (a podium's rim) stay inside the
    frame, so nothing runs off its edges.
    """
    target = (points.min(axis=0) + points.max(axis=0)) / 2
    elevation = elevation_deg
    for _ in range(80):
        distance = fit_distance(points, target, elevation, azimuth_deg, lens_mm, width, height, fill, zone)
        camera = target + distance * camera_basis(elevation, azimuth_deg)[0]
        if camera[2] < min_camera_z and elevation < 80:
            elevation = min(80.0, elevation + 2.0)
            continue
        if stage_points is not None:
            stage_xy = project(stage_points, camera, elevation, azimuth_deg, lens_mm, width, height, zone)
            if np.abs(stage_xy).max() > 0.96 and fill > 0.2:
                fill *= 0.96
                max_fill = fill  # the stage bounds the fill from here on
                continue
        share = box_share(project(points, camera, elevation, azimuth_deg, lens_mm, width, height, zone))
        if share < min_share and fill < max_fill - 1e-3:
            fill = min(max_fill, fill * min_share / share * 1.01)
            continue
        break
    return Placement(elevation, distance, camera, target, fill)
