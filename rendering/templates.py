"""Templates: scene recipes as data. A template says how the stage looks; the brief says its colours."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Camera presets: (elevation above the product's centre, azimuth from the front), in degrees.
CAMERA_ANGLES: dict[str, tuple[float, float]] = {
    "front": (4.0, 0.0),
    "three_quarter": (18.0, 35.0),
    "top_down": (45.0, 15.0),
    "low_angle": (-6.0, 20.0),
}

#: Lighting rigs, described for `autoplay templates`; their lights live in ``scene.LIGHT_RIGS``.
LIGHTING = {
    "softbox": "large key and fill boxes, soft shadows",
    "rim": "two rim strips that outline the product, a low key",
    "top": "one large overhead box, dark sides",
    "window": "one broad side light, like daylight from a window",
}


class Template(BaseModel):
    """A validated scene recipe. Camera angles are in degrees, lens in millimetres (36 mm sensor).

    ``background``: the brief's colour as a flat backdrop, or a two-stop vertical gradient from it to
    the accent colour (a darker shade of it when there is no accent).
    ``ground``: ``shadow`` (only the product's shadow on the backdrop), ``floor`` (a tabletop in a
    shade of the backdrop, meeting it at the horizon) or ``podium`` (a cylinder in the podium colour).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    background: Literal["solid", "gradient"] = "solid"
    ground: Literal["shadow", "floor", "podium"] = "shadow"
    lighting: Literal["softbox", "rim", "top", "window"] = "softbox"
    camera: Literal["front", "three_quarter", "top_down", "low_angle"] = "three_quarter"
    lens_mm: float = Field(default=50.0, ge=18, le=200)
    fill: float = Field(default=0.62, gt=0.1, lt=0.95, description="share of the safe zone the product fills")


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template(
            name="studio",
            description="Soft key and fill on a seamless backdrop, three-quarter view, soft floor shadow.",
        ),
        Template(
            name="podium",
            description="Product on a cylindrical podium in the podium colour, front view, softbox lighting.",
            ground="podium",
            camera="front",
            fill=0.58,
        ),
        Template(
            name="hero",
            description="Low-angle hero shot with rim lights and a gradient backdrop.",
            background="gradient",
            lighting="rim",
            camera="low_angle",
            lens_mm=65,
        ),
        Template(
            name="tabletop",
            description="Product on a tabletop that meets the backdrop at the horizon, window light, long lens.",
            ground="floor",
            lighting="window",
            camera="front",
            lens_mm=85,
            fill=0.6,
        ),
        Template(
            name="overhead",
            description="High angle looking down on the product, softbox light, gradient backdrop.",
            background="gradient",
            lighting="softbox",
            camera="top_down",
            lens_mm=45,
            fill=0.55,
        ),
        Template(
            name="spotlight",
            description="Podium under one top light with a gradient falling off below: dramatic, for dark palettes.",
            background="gradient",
            ground="podium",
            lighting="top",
            camera="front",
            lens_mm=70,
            fill=0.56,
        ),
        Template(
            name="minimal",
            description="Straight-on, long lens, small product with generous space on a flat colour.",
            lighting="window",
            camera="front",
            lens_mm=100,
            fill=0.45,
        ),
    ]
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; choose one of {sorted(TEMPLATES)}") from None
