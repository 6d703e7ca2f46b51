"""Render profiles (quality/speed trade-offs) and the ad aspect ratios with their native pixel sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from creative.vocabulary import ASPECTS, check_aspect
from rendering.framing import SafeZone

#: Safe zones per aspect, as (left, top, right, bottom) margins in shares of the frame. The product stays
#: inside: stories and reels cover about the top 14% (account name) and bottom 20% (reply box, CTA) with
#: interface; feed and landscape placements only crop slightly at the edges.
SAFE_MARGINS: dict[str, tuple[float, float, float, float]] = {
    "1:1": (0.05, 0.05, 0.05, 0.05),
    "4:5": (0.05, 0.05, 0.05, 0.05),
    "9:16": (0.06, 0.14, 0.06, 0.20),
    "16:9": (0.05, 0.05, 0.05, 0.05),
}


@dataclass(frozen=True)
class RenderProfile:
    """How hard Cycles works. ``version`` is part of every variant id: bump it when output changes."""

    name: str
    scale: float
    samples: int
    denoise: bool
    #: OpenImageDenoise's network: FAST is a smaller one, a quarter of a preview's time less on the CPU (about
    #: 1.1 s of 5 at 1:1, 2.1 s of 9 at 9:16) for a slightly softer metal highlight; thumbnails and full size keep HIGH.
    denoise_quality: Literal["HIGH", "BALANCED", "FAST"] = "HIGH"
    version: int = 1


PROFILES: dict[str, RenderProfile] = {
    # OpenImageDenoise at every size: on the CPU it costs a fraction of the samples it saves
    "thumbnail": RenderProfile("thumbnail", scale=0.125, samples=8, denoise=True, version=4),
    "preview": RenderProfile("preview", scale=0.5, samples=8, denoise=True, denoise_quality="FAST", version=5),
    "production": RenderProfile("production", scale=1.0, samples=64, denoise=True, version=4),
}


def get_profile(name: str) -> RenderProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown render profile {name!r}; choose one of {sorted(PROFILES)}") from None


def pixel_size(aspect: str, profile: RenderProfile) -> tuple[int, int]:
    """Pixel size of a render: the native size scaled by the profile, rounded to even (video needs it)."""
    w, h = ASPECTS[check_aspect(aspect)]
    return _even(w * profile.scale), _even(h * profile.scale)


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def safe_zone(aspect: str) -> SafeZone:
    """The part of an ``aspect`` frame that no placement's interface covers."""
    return SafeZone.from_margins(*SAFE_MARGINS[check_aspect(aspect)])
