"""Render QA: objective checks on every render, from the final image and the product's own mask.

Pure numpy, tested without Blender. The worker renders the product's visible silhouette (podium and floor
as holdouts) beside each still; these checks read it with the picture and decide whether the render may be
published. A failing render is kept for people to look at, marked with its reasons, and never published.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy.ndimage import binary_erosion, median_filter

#: Bands of a 9:16 frame that the stories and reels interface covers (share of the height from the top
#: and from the bottom): no product pixel may fall in them.
STORY_BANDS = {"9:16": (0.14, 0.20)}


@dataclass(frozen=True)
class Thresholds:
    """What a publishable render must meet (defaults: at preview size and above)."""

    min_box_share: float = 0.45  # of the frame's limiting dimension
    min_coverage: float = 0.025  # share of the frame covered by product pixels
    max_clipped: float = 0.02  # share of product pixels with a channel at 255
    max_hidden: float = 0.02  # share of the product hidden by the floor or the podium
    max_delta_e: float = 5.0  # CIEDE2000 of each colourway against its swatch
    max_noise: float = 6.0  # 8-bit levels of grain inside the product
    max_hidden_by_others: float = 0.15  # in a bundle: share of one product the others hide
    min_product_span: float = 0.08  # in a bundle: each product's box spans this share of the frame's side


@dataclass(frozen=True)
class QAReport:
    """The measures of one render and the reasons it fails (empty when it passes)."""

    box: list[float] | None  # left, top, right, bottom as shares of the frame
    box_share: float
    coverage: float
    touches_edge: bool
    story_band_pixels: int
    hidden_share: float
    clipped_share: float
    noise: float
    camera_above_floor: bool
    delta_e: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    products: list[dict] = field(default_factory=list)  # a bundle's products, each measured on its own

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict) -> QAReport:
        return cls(**{k: v for k, v in data.items() if k != "passed"})

    def summary(self) -> str:
        verdict = "pass" if self.passed else "FAIL " + "; ".join(self.failures)
        return (
            f"box {self.box_share:.0%} of frame, covers {self.coverage:.1%}, clipped {self.clipped_share:.1%}, "
            f"noise {self.noise:.1f}, {verdict}"
        )


def check_render(
    image: np.ndarray,
    visible: np.ndarray,
    aspect: str,
    unoccluded: np.ndarray | None = None,
    camera_above_floor: bool = True,
    delta_e: dict[str, float] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> QAReport:
    """Measure one render: ``image`` is the final RGB (uint8, H x W x 3); ``visible`` the product's
    visible coverage (0..1); ``unoccluded`` its coverage with the podium and floor taken away."""
    h, w = visible.shape
    product = visible >= 0.5
    delta_e = {k: round(float(v), 2) for k, v in (delta_e or {}).items()}
    if not product.any():
        return QAReport(None, 0.0, 0.0, False, 0, 1.0, 0.0, 0.0, camera_above_floor, delta_e, ["no product in frame"])
    ys, xs = np.nonzero(product)
    box = [round(xs.min() / w, 4), round(ys.min() / h, 4), round((xs.max() + 1) / w, 4), round((ys.max() + 1) / h, 4)]
    box_share = max(box[2] - box[0], box[3] - box[1])
    coverage = float(visible.sum() / (h * w))
    touches = touches_edge(visible)
    band_pixels = 0
    if aspect in STORY_BANDS:
        top, bottom = STORY_BANDS[aspect]
        band_pixels = int(product[: int(round(top * h))].sum() + product[h - int(round(bottom * h)) :].sum())
    hidden = 0.0
    if unoccluded is not None and unoccluded.sum() > 0:
        hidden = float(max(0.0, 1.0 - visible.sum() / unoccluded.sum()))
    solid = visible >= 0.99
    clipped = float((image[solid] >= 255).any(axis=1).mean()) if solid.any() else 0.0
    noise = grain(image, solid)

    t = thresholds
    failures = []
    if touches:
        failures.append("the product touches the frame's edge")
    if box_share < t.min_box_share:
        failures.append(f"the product spans {box_share:.0%} of the frame (needs {t.min_box_share:.0%})")
    if coverage < t.min_coverage:
        failures.append(f"product pixels cover {coverage:.1%} of the frame (needs {t.min_coverage:.1%})")
    if band_pixels:
        failures.append(f"{band_pixels} product pixels under the {aspect} interface bands")
    if hidden > t.max_hidden:
        failures.append(f"{hidden:.0%} of the product is hidden by the floor or podium")
    if clipped > t.max_clipped:
        failures.append(f"{clipped:.1%} of product pixels are clipped (at most {t.max_clipped:.0%})")
    if noise > t.max_noise:
        failures.append(f"grain of {noise:.1f} levels in the product (at most {t.max_noise:g})")
    if not camera_above_floor:
        failures.append("the camera is below the floor")
    for slot, de in delta_e.items():
        if de > t.max_delta_e:
            failures.append(f"colourway {slot!r} is CIEDE2000 {de:.1f} from its swatch (at most {t.max_delta_e:g})")
    return QAReport(
        box, round(box_share, 4), round(coverage, 4), touches, band_pixels, round(hidden, 4), round(clipped, 4),
        round(noise, 2), camera_above_floor, delta_e, failures,
    )  # fmt: skip


def touches_edge(coverage: np.ndarray) -> bool:
    """Whether any of it (above 2% coverage: antialiasing counts) lies on the frame's border."""
    seen = coverage > 0.02
    return bool(seen[0].any() or seen[-1].any() or seen[:, 0].any() or seen[:, -1].any())


def check_products(
    report: QAReport,
    masks: list[tuple[np.ndarray, np.ndarray]],
    names: list[str],
    thresholds: Thresholds = Thresholds(),
) -> QAReport:
    """A bundle's render checked product by product: ``masks`` holds each one's coverage with the others in
    front of it and with them gone. Each must be whole in the frame, off its edges, big enough to read and
    not hidden by the others; a failure names the product. Its size is read from its box, not its area: at
    real sizes a watch beside a gift box or a floor lamp's thin pole covers little and still reads."""
    t, measured, failures = thresholds, [], []
    for name, (visible, alone) in zip(names, masks):
        h, w = alone.shape
        touches = touches_edge(alone)
        coverage = float(alone.sum() / (h * w))
        ys, xs = np.nonzero(alone >= 0.5)
        span = max((xs.max() + 1 - xs.min()) / w, (ys.max() + 1 - ys.min()) / h) if len(xs) else 0.0
        hidden = float(max(0.0, 1.0 - visible.sum() / alone.sum())) if alone.sum() > 0 else 1.0
        measured.append({"name": name, "coverage": round(coverage, 4), "span": round(float(span), 4),
                         "hidden_by_others": round(hidden, 4), "touches_edge": touches})  # fmt: skip
        if touches:
            failures.append(f"{name} touches the frame's edge")
        if span < t.min_product_span:
            failures.append(f"{name} spans {span:.0%} of the frame (needs {t.min_product_span:.0%})")
        if hidden > t.max_hidden_by_others:
            failures.append(f"{hidden:.0%} of {name} is hidden by the other products")
    return replace(report, products=measured, failures=[*report.failures, *failures])


#: Grain is judged where the product's inner part covers at least this share of the frame. Under it (a watch
#: case at thumbnail size: about 110 pixels) the spread measures a metal case's reflections more than the
#: renderer's noise: the same thumbnail measured 1.5 to 6.4 levels from one fresh clone's run to another.
MIN_GRAIN_SHARE = 0.01


def grain(image: np.ndarray, region: np.ndarray) -> float:
    """Noise in 8-bit levels: the robust spread (1.4826 MAD) of the luminance minus its 3x3 median, inside
    ``region`` shrunk by two pixels so edges and texture boundaries count little."""
    inner = binary_erosion(region, iterations=2)
    if inner.sum() < max(25, MIN_GRAIN_SHARE * region.size):
        return 0.0
    luma = image[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    residual = (luma - median_filter(luma, size=3))[inner]
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))))
