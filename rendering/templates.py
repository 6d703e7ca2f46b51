"""Templates: scene recipes as data. A template says how the stage looks; the brief says its colours."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Template(BaseModel):
    """A validated scene recipe. Camera angles are in degrees, lens in millimetres (36 mm sensor)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    background: Literal["solid", "gradient"] = "solid"
    ground: Literal["shadow", "podium"] = "shadow"
    lighting: Literal["softbox", "rim", "top"] = "softbox"
    camera: Literal["front", "three_quarter", "top_down", "low_angle"] = "three_quarter"
    lens_mm: float = Field(default=50.0, ge=18, le=200)
    fill: float = Field(default=0.62, gt=0.1, lt=0.95, description="share of the frame the product fills")


#: Camera presets: (elevation above the product's centre, azimuth from the front), in degrees.
CAMERA_ANGLES: dict[str, tuple[float, float]] = {
    "front": (4.0, 0.0),
    "three_quarter": (18.0, 35.0),
    "top_down": (70.0, 10.0),
    "low_angle": (-6.0, 20.0),
}

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template(
            name="studio",
            description="Soft key and fill on a seamless backdrop, three-quarter view, soft floor shadow.",
        ),
        Template(
            name="podium",
            description="Product on a tinted cylindrical podium, front view, softbox lighting.",
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
    ]
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; choose one of {sorted(TEMPLATES)}") from None
