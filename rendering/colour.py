"""Brand colours: hex validation and the sRGB <-> linear conversions Blender needs."""

from __future__ import annotations

import re

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def normalise_hex(value: str) -> str:
    """Return ``#RRGGBB`` in upper case, or raise ValueError naming the bad value."""
    match = _HEX.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a colour in #RRGGBB hex form")
    return "#" + match.group(1).upper()


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
