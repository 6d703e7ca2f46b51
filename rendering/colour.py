"""Brand colours: hex validation and the sRGB <-> linear conversions Blender needs."""

from __future__ import annotations

import numpy as np

from creative.vocabulary import normalise_hex


def hex_to_rgb8(value: str) -> tuple[int, int, int]:
    h = normalise_hex(value)[1:]
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def srgb_to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def hex_to_linear(value: str) -> tuple[float, float, float]:
    """Linear RGB for a hex colour: what a Blender material needs to show that hex under Standard."""
    r, g, b = hex_to_rgb8(value)
    return srgb_to_linear(r / 255), srgb_to_linear(g / 255), srgb_to_linear(b / 255)


def shade(value: str, factor: float) -> str:
    """A lighter (factor > 1) or darker (factor < 1) version of a hex colour, for podiums and accents."""
    r, g, b = hex_to_rgb8(value)
    if factor >= 1:
        mix = factor - 1
        r, g, b = (round(c + (255 - c) * min(mix, 1)) for c in (r, g, b))
    else:
        r, g, b = (round(c * factor) for c in (r, g, b))
    return f"#{r:02X}{g:02X}{b:02X}"


# --- CIELAB and CIEDE2000: how far apart two colours look, for the brief's palette guardrail ---

_D65 = (0.95047, 1.0, 1.08883)
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_XYZ_TO_RGB = (
    (3.2404542, -1.5371385, -0.4985314),
    (-0.9692660, 1.8760108, 0.0415560),
    (0.0556434, -0.2040259, 1.0572252),
)


def linear_to_srgb(c: float) -> float:
    return c * 12.92 if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def hex_to_lab(value: str) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB hex colour."""
    rgb = hex_to_linear(value)
    xyz = [sum(m * c for m, c in zip(row, rgb)) / w for row, w in zip(_RGB_TO_XYZ, _D65)]
    f = [t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def lab_to_hex(lab: tuple[float, float, float]) -> str | None:
    """The sRGB hex of a CIELAB colour, or None when it lies outside the sRGB gamut."""
    fy = (lab[0] + 16) / 116
    f = (fy + lab[1] / 500, fy, fy - lab[2] / 200)
    xyz = [(t**3 if t > 6 / 29 else 3 * (6 / 29) ** 2 * (t - 4 / 29)) * w for t, w in zip(f, _D65)]
    rgb = [sum(m * c for m, c in zip(row, xyz)) for row in _XYZ_TO_RGB]
    if any(c < -1e-4 or c > 1 + 1e-4 for c in rgb):
        return None
    r, g, b = (round(min(max(linear_to_srgb(max(c, 0.0)), 0.0), 1.0) * 255) for c in rgb)
    return f"#{r:02X}{g:02X}{b:02X}"


def ciede2000(lab1: tuple[float, float, float], lab2: tuple[float, float, float]) -> float:
    """CIEDE2000 colour difference (Sharma, Wu and Dalal 2005); about 2.3 is a just-noticeable difference."""
    from math import atan2, cos, degrees, exp, hypot, radians, sin, sqrt

    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_bar = (hypot(a1, b1) + hypot(a2, b2)) / 2
    g = 0.5 * (1 - sqrt(c_bar**7 / (c_bar**7 + 25**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = hypot(a1p, b1), hypot(a2p, b2)
    h1p = degrees(atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = degrees(atan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = l2 - l1, c2p - c1p
    dh = 0.0
    if c1p * c2p:
        dh = h2p - h1p
        dh = dh - 360 if dh > 180 else dh + 360 if dh < -180 else dh
    dhh = 2 * sqrt(c1p * c2p) * sin(radians(dh / 2))
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    else:
        h_bar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (
        1
        - 0.17 * cos(radians(h_bar - 30))
        + 0.24 * cos(radians(2 * h_bar))
        + 0.32 * cos(radians(3 * h_bar + 6))
        - 0.20 * cos(radians(4 * h_bar - 63))
    )
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -2 * sqrt(cp_bar**7 / (cp_bar**7 + 25**7)) * sin(radians(60 * exp(-(((h_bar - 275) / 25) ** 2))))
    return sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dhh / s_h) ** 2 + r_t * (dc / s_c) * (dhh / s_h))


def palette_variations(
    palette: list[str], max_delta_e: float, steps: tuple[float, ...] = (-12, -6, 6, 12)
) -> list[str]:
    """The brand's colours plus lighter, darker, softer and richer versions within ``max_delta_e`` (CIEDE2000)
    of the colour they come from: new colours to try that still read as the brand's."""
    out = list(dict.fromkeys(normalise_hex(c) for c in palette))
    if max_delta_e <= 0:
        return out
    for base in list(out):
        lab = hex_to_lab(base)
        chroma = (lab[1] ** 2 + lab[2] ** 2) ** 0.5
        for step in steps:
            for candidate in (
                (lab[0] + step, lab[1], lab[2]),
                (lab[0], lab[1] * (1 + step / chroma), lab[2] * (1 + step / chroma)) if chroma > 1 else None,
            ):
                if candidate is None or not 0 <= candidate[0] <= 100:
                    continue
                hex_ = lab_to_hex(candidate)
                if hex_ and hex_ not in out and ciede2000(hex_to_lab(hex_), lab) <= max_delta_e:
                    out.append(hex_)
    return out


def neutral_preimage(linear: np.ndarray) -> np.ndarray:
    """The base colour that Khronos PBR Neutral shows as ``linear`` on a surface lit at unit exposure.

    The view transform subtracts an offset set by the darkest channel (``m - 6.25 m^2`` under 0.08, else
    0.04: its Fresnel allowance), which would darken and oversaturate a dark or saturated swatch; adding
    it back first makes a colourway come out as its hex on a diffuse patch facing the key light. Exact
    while the brightest channel stays under the transform's highlight compression (0.76).
    """
    low = float(np.min(linear))
    m = 0.4 * np.sqrt(low) if low < 0.04 else low + 0.04  # the darkest input channel that maps onto ``low``
    offset = m - 6.25 * m * m if m < 0.08 else 0.04
    return np.asarray(linear, dtype=float) + offset
