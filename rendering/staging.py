"""Shape-aware staging: how a product photographer would set up for this product's shape.

Pure numpy, tested without Blender. The scene module measures the normalised product (its largest
side is 1 unit, so lights, floor and podium scaled for a 1-unit stage fit every product) and asks here
for the pose of the camera, the podium and the ground. Flat products (a watch, a bag lying down) are
seen from above so their face reads; wide ones are looked down on so a desk's top is not edge-on; the
camera never goes below the floor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FLAT = 0.3  # height under 30% of the footprint: a watch, a wallet, a plate, a bag lying down
WIDE = 1.0  # wider than tall: a desk, a sofa
MIN_CAMERA_CLEARANCE = 0.04  # the camera stays this far (a share of the product size) above the ground


@dataclass(frozen=True)
class Shape:
    """The normalised product's measures: width (x), depth (y), height (z), all at most 1."""

    width: float
    depth: float
    height: float

    @classmethod
    def of(cls, vertices: np.ndarray) -> Shape:
        extent = vertices.max(axis=0) - vertices.min(axis=0)
        return cls(*(round(float(x), 4) for x in extent))

    @property
    def footprint(self) -> float:
        return max(self.width, self.depth)

    @property
    def flatness(self) -> float:
        """Height over the larger side of the footprint: under ``FLAT`` the product lies flat."""
        return self.height / max(self.footprint, 1e-9)

    @property
    def kind(self) -> str:
        if self.flatness < FLAT:
            return "flat"
        return "wide" if self.flatness < WIDE else "tall"

    def as_dict(self) -> dict:
        return {**asdict(self), "flatness": round(self.flatness, 4), "kind": self.kind}


def camera_elevation(preset_deg: float, camera: str, shape: Shape, portrait: bool = False) -> float:
    """The elevation (degrees above the product's centre) to start framing from.

    A flat product is seen three-quarter from above (nearly straight down for top-down templates and in
    tall frames, where it is turned to run up the picture); a wide one from at least a little above, so its
    top reads. Tall products keep the template's preset.
    """
    if shape.kind == "flat":
        return 62.0 if camera == "top_down" or portrait else max(preset_deg, 32.0)
    if shape.kind == "wide":
        return max(preset_deg, 14.0)
    return preset_deg


#: How far past the footprint's corners a podium reaches, as a factor of their distance from its centre.
PODIUM_MARGIN = 1.08


def podium_size(shape: Shape) -> tuple[float, float, float]:
    """Half-width, half-depth and height of a podium just larger than the product's footprint, low under flat
    products. Round under a round or square-ish footprint; under a long one (a watch on its strap, a tray) an
    oval plinth that runs the same way, through the footprint's corners pushed out by ``PODIUM_MARGIN``: with
    half-sides a and b, half-axes m*sqrt(a*(a+b)) and m*sqrt(b*(a+b)), so every corner sits as far inside the
    rim as under a round podium, and the oval is only as much longer than the product as its corners need."""
    a, b = shape.width / 2, shape.depth / 2
    height = float(np.clip(0.5 * shape.height, 0.05, 0.12))
    if max(a, b) < 1.5 * min(a, b):
        r = PODIUM_MARGIN * float(np.hypot(a, b))
        return r, r, height
    rx, ry = (PODIUM_MARGIN * float(np.sqrt(side * (a + b))) for side in (a, b))
    return rx, ry, height


#: The shadow catcher's reach to the sides and behind the product, in product sizes: it holds every shadow the
#: rigs cast, and beyond it the floor's faint far-field shading is under ``compose.SHADOW_FLOOR``, so its edge
#: never shows. (The catcher is most of a preview's render time: a larger one costs seconds.)
FLOOR_REACH = 3.0
#: Its reach in front of the product (towards the camera) in a studio: every rig's key light stands in front,
#: so nothing nearer the camera is shadowed, and that floor was most of a tall frame's render time.
FRONT_REACH = 0.25


def floor_spans(front_edge: float, reach: float | None) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """Along y (the camera looks from -y): the shadow catcher's span, from ``reach`` in front of the product's
    (or its podium's) ``front_edge`` to ``FLOOR_REACH`` behind, and the floor in front of it that the camera
    does not see but reflections and bounce light still do (None when the catcher reaches as far forward as
    back: ``reach`` None, for a lifestyle place whose sun may stand behind)."""
    near = -FLOOR_REACH if reach is None else max(-FLOOR_REACH, front_edge - reach)
    return (near, FLOOR_REACH), ((-FLOOR_REACH, near) if near > -FLOOR_REACH else None)


def min_camera_height(ground: float, shape: Shape) -> float:
    """The lowest the camera may be: above the floor or podium top, and for wide products above their top,
    so a desk or a bag is never seen from underneath its top."""
    floor = ground + MIN_CAMERA_CLEARANCE * max(shape.footprint, shape.height)
    return floor + shape.height if shape.kind != "tall" else floor


BUNDLE_GAP = 0.35  # the space between two products of a bundle, as a share of their mean width


def bundle_layout(widths: list[float]) -> list[float]:
    """Where a bundle's products stand in a row: the x centre of each (in the units of ``widths``), the lead
    (the first) in the middle, the others alternately to its right and left, a gap of ``BUNDLE_GAP`` times
    the mean width between neighbours, so no two overlap; the row is centred on 0."""
    row = [0]
    for i in range(1, len(widths)):
        row = [*row, i] if i % 2 else [i, *row]
    gap = BUNDLE_GAP * float(np.mean(widths))
    centres, x = {}, 0.0
    for i in row:
        centres[i] = x + widths[i] / 2
        x += widths[i] + gap
    middle = (x - gap) / 2
    return [centres[i] - middle for i in range(len(widths))]
