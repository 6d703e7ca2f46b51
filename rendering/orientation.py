"""Which way is up: the rotation that stands a product model upright. Pure numpy, tested without Blender."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import ConvexHull, QhullError

_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}


#: Where a model file's own axis lands in the scene: glTF and OBJ (every format but .blend) are Y-up, and
#: Blender's importers turn a file's (x, y, z) into the scene's (x, -z, y).
_FILE_TO_SCENE = {"x": ("x", 1), "y": ("z", 1), "z": ("y", -1)}


def scene_orientation(orientation: str, suffix: str) -> str:
    """``orientation`` as the user gave it (an axis of the model file, or ``auto``/``as_is``) in the scene's
    axes, which ``upright_rotation`` works in: a Z-up OBJ said ``+z`` stands on the scene's ``-y``."""
    if orientation in ("auto", "as_is") or suffix.lower() == ".blend":  # a .blend is in the scene's frame
        return orientation
    axis, sign = _FILE_TO_SCENE[orientation[1]]
    return ("+" if (orientation[0] == "+") == (sign > 0) else "-") + axis


def upright_rotation(vertices: np.ndarray, orientation: str) -> np.ndarray:
    """The rotation (3x3) that makes the model stand up; ``orientation`` an axis in the scene's frame
    (``scene_orientation``), ``auto`` or ``as_is``.

    ``auto``: a product lying on its side (its longest extent horizontal and at least 1.4 times its
    height, with a round cross-section, like a bottle, can, tube or jar) is stood on its wider end.
    Anything else is taken as upright, which is what glTF (Y-up) and Blender's importers deliver.
    """
    if orientation == "as_is":
        return np.eye(3)
    if orientation != "auto":
        return _rotation_onto_z(np.array(_AXES[orientation], dtype=float))
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    extent = hi - lo
    long = int(np.argmax(extent))
    if long == 2 or extent[long] < 1.4 * extent[2]:
        return np.eye(3)
    t = (vertices[:, long] - lo[long]) / extent[long]
    others = [a for a in range(3) if a != long]
    if not _round_section(vertices[:, others]):
        return np.eye(3)  # not round: a shoe or a laptop lies flat on purpose
    centre = (lo[others] + hi[others]) / 2

    def radius_profile(mask: np.ndarray) -> float:
        rel = vertices[mask][:, others] - centre
        return float(np.hypot(rel[:, 0], rel[:, 1]).max()) if len(rel) else 0.0

    low_end, high_end = radius_profile(t < 0.1), radius_profile(t > 0.9)
    up = np.zeros(3)
    up[long] = 1.0 if low_end >= high_end else -1.0
    return _rotation_onto_z(up)


def _round_section(section: np.ndarray) -> bool:
    """Whether points seen along the long axis outline a round shape: their convex hull is nearly as
    wide one way as the other and nearly a circle (4 pi area / perimeter^2 >= 0.9: an octagon is 0.95, a
    square 0.79). Works on a low-poly can, whose 8 vertices per ring leave most angles empty."""
    try:
        hull = ConvexHull(section)
    except (QhullError, ValueError):
        return False
    extent = section.max(axis=0) - section.min(axis=0)
    if extent.min() < 0.85 * extent.max():
        return False
    area, perimeter = hull.volume, hull.area  # in 2-D, scipy's volume is the area and area the perimeter
    return 4 * math.pi * area / perimeter**2 >= 0.9


def _rotation_onto_z(axis: np.ndarray) -> np.ndarray:
    """A rotation taking the unit vector ``axis`` onto +Z."""
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(axis, z), float(axis @ z)
    if np.allclose(v, 0):
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)
