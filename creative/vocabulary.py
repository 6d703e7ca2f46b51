"""The creative vocabulary: template names and recipes, aspect ratios, brand colours, orientations, and
the factors that make one variant differ from another. Plain data and validation, no rendering."""

from __future__ import annotations

import colorsys
import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def normalise_hex(value: str) -> str:
    """Return ``#RRGGBB`` in upper case, or raise ValueError naming the bad value."""
    match = _HEX.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a colour in #RRGGBB hex form")
    return "#" + match.group(1).upper()


#: A brand colour field: any ``#RRGGBB`` spelling in, upper-case ``#RRGGBB`` out, a clear error otherwise.
HexColour = Annotated[str, AfterValidator(normalise_hex)]

#: Names a marketer gives a background ("purple against white"), by hue and how grey and light it is.
COLOUR_FAMILIES = ("black", "white", "grey", "beige", "brown", "red", "orange", "yellow", "green", "teal", "blue",
                   "purple", "pink")  # fmt: skip
#: A colour to draw each family in (charts).
FAMILY_SWATCHES = {"black": "#1A1A1A", "white": "#F7F7F7", "grey": "#9E9E9E", "beige": "#E8D5C4", "brown": "#8B5A2B",
                   "red": "#D7263D", "orange": "#F28C28", "yellow": "#F4C430", "green": "#2E7D32", "teal": "#00A6A6",
                   "blue": "#1F6FEB", "purple": "#7B2CBF", "pink": "#F06292"}  # fmt: skip
_HUES = ((15, "red"), (45, "orange"), (70, "yellow"), (165, "green"), (195, "teal"), (255, "blue"), (290, "purple"),
         (345, "pink"), (360, "red"))  # fmt: skip


def colour_family(colour: str) -> str:
    """The family of a ``#RRGGBB`` colour (one of ``COLOUR_FAMILIES``): what pools the shades the loop tries
    near a palette colour, so "purple backgrounds" can be judged across products and brands."""
    hex_ = normalise_hex(colour)
    r, g, b = (int(hex_[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, light, _ = colorsys.rgb_to_hls(r, g, b)
    chroma, degrees = max(r, g, b) - min(r, g, b), hue * 360
    if light < 0.15 or (chroma < 0.1 and light < 0.25):
        return "black"
    if chroma < 0.1:
        return "white" if light > 0.85 else "grey"
    if 10 <= degrees < 50 and light > 0.7 and chroma < 0.35:
        return "beige"
    if 10 <= degrees < 50 and light < 0.45:
        return "brown"
    return next(name for bound, name in _HUES if degrees < bound)


#: Which model axis points up; ``auto`` stands products lying on their side upright.
ORIENTATIONS = ("auto", "as_is", "+x", "-x", "+y", "-y", "+z", "-z")

#: Native sizes of the placements we render for (feed, portrait feed, stories/reels, landscape).
ASPECTS: dict[str, tuple[int, int]] = {
    "1:1": (1080, 1080),
    "4:5": (1080, 1350),
    "9:16": (1080, 1920),
    "16:9": (1920, 1080),
}


def check_aspect(aspect: str) -> str:
    if aspect not in ASPECTS:
        raise ValueError(f"unknown aspect ratio {aspect!r}; choose one of {list(ASPECTS)}")
    return aspect


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


#: The places a lifestyle scene can be set in: the CC0 HDRIs that ship with bpy (studiolights/world).
ENVIRONMENTS = ("interior", "courtyard", "forest", "sunset")


class SeasonWindow(BaseModel):
    """When a seasonal template runs: ``start`` to ``end`` as ``MM-DD``, both days included, across New Year
    when ``start`` comes after ``end``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        try:
            datetime.strptime(f"2000-{value}", "%Y-%m-%d")  # a leap year: 02-29 is a day
        except ValueError:
            raise ValueError(f"{value!r} is not a day of the year as MM-DD") from None
        return value

    def contains(self, day: date) -> bool:
        md = day.strftime("%m-%d")
        return self.start <= md <= self.end if self.start <= self.end else md >= self.start or md <= self.end


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
    accent: HexColour | None = Field(
        default=None, description="the scene's gradient end and rim tint, when the brief gives none"
    )
    kind: Literal["studio", "lifestyle", "seasonal", "bundle"] = "studio"
    window: SeasonWindow | None = Field(default=None, description="the days a seasonal template runs on")
    environment: Literal[ENVIRONMENTS] | None = Field(  # type: ignore[valid-type]
        default=None, description="a lifestyle scene's place: the HDRI that lights it and shows behind it"
    )
    environment_turn: float = Field(default=0.0, ge=-180, le=180, description="degrees the place turns about Z")

    @model_validator(mode="after")
    def _kind_has_its_parts(self) -> Template:
        if (self.kind == "seasonal") != (self.window is not None):
            raise ValueError(f"template {self.name!r}: a seasonal template, and only one, has a window")
        if (self.kind == "lifestyle") != (self.environment is not None):
            raise ValueError(f"template {self.name!r}: a lifestyle template, and only one, has an environment")
        return self

    def in_season(self, day: date | None) -> bool:
        """Whether the template may run on ``day``: evergreen ones always; seasonal ones inside their window
        (and when no day is given)."""
        return self.window is None or day is None or self.window.contains(day)


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
        Template(
            name="interior",
            description="At home: the product on a plinth in the brand colour in a sunlit room, out of focus behind.",
            ground="podium",
            lighting="softbox",
            camera="three_quarter",
            fill=0.56,
            kind="lifestyle",
            environment="interior",
            environment_turn=-161,
        ),
        Template(
            name="courtyard",
            description="Outdoors in a stone courtyard: a plinth in the brand colour, daylight, a long lens.",
            ground="podium",
            lighting="window",
            camera="front",
            lens_mm=70,
            fill=0.56,
            kind="lifestyle",
            environment="courtyard",
            environment_turn=-80,
        ),
        Template(
            name="forest",
            description="On a plinth in the brand colour in a forest clearing, trees soft behind.",
            ground="podium",
            lighting="softbox",
            camera="three_quarter",
            lens_mm=60,
            fill=0.56,
            kind="lifestyle",
            environment="forest",
            environment_turn=-35,
        ),
        Template(
            name="sunset",
            description="Golden hour by the sea: a plinth in the brand colour, warm rim light, the low sun behind.",
            ground="podium",
            lighting="rim",
            camera="front",
            lens_mm=70,
            fill=0.56,
            accent="#F2A65A",
            kind="lifestyle",
            environment="sunset",
            environment_turn=-119,
        ),
        Template(
            name="bundle",
            description="A bundle: the products side by side at their real sizes on a seamless backdrop, "
            "three-quarter view from a little above, soft floor shadows.",
            camera="three_quarter",
            lens_mm=60,
            fill=0.66,
            kind="bundle",
        ),
        Template(
            name="bundle-podium",
            description="A bundle on one wide podium in the podium colour, front view, softbox lighting.",
            ground="podium",
            camera="front",
            lens_mm=55,
            fill=0.62,
            kind="bundle",
        ),
        Template(
            name="winter-holidays",
            description="Winter holidays: a gradient into deep berry red, warm rim lights, the product on a podium.",
            background="gradient",
            ground="podium",
            lighting="rim",
            camera="three_quarter",
            fill=0.56,
            accent="#8E1B2B",
            kind="seasonal",
            window=SeasonWindow(start="11-20", end="12-31"),
        ),
        Template(
            name="valentines",
            description="Valentine's Day: a blush-pink gradient, soft key light, front view on a podium.",
            background="gradient",
            ground="podium",
            lighting="softbox",
            camera="front",
            fill=0.56,
            accent="#E8718D",
            kind="seasonal",
            window=SeasonWindow(start="01-25", end="02-14"),
        ),
        Template(
            name="summer",
            description="Summer: broad window light like a low sun, a gradient into golden yellow.",
            background="gradient",
            lighting="window",
            camera="three_quarter",
            accent="#F2B544",
            kind="seasonal",
            window=SeasonWindow(start="06-01", end="08-31"),
        ),
    ]
}


def season_level(template: str, day: date | None) -> str:
    """A variant's season as the learner sees it: ``evergreen`` for a template without a window; for a
    seasonal one, ``<template>:in`` or ``<template>:out`` of its window on ``day`` (in, with no day: the
    planner proposes it only then). So a Christmas scene's effect in December is learnt apart from its
    effect in March."""
    window = get_template(template).window
    if window is None:
        return "evergreen"
    return f"{template}:in" if day is None or window.contains(day) else f"{template}:out"


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; choose one of {sorted(TEMPLATES)}") from None


#: What a variant is: a still image, or a looping 360-degree turntable video with its poster.
KINDS = ("still", "turntable")
#: The placements that take video: feed (1:1, 4:5) and stories and reels (9:16); 16:9 runs stills only.
VIDEO_ASPECTS = ("1:1", "4:5", "9:16")


def placement_of(aspect: str) -> str:
    """Where an aspect runs on Meta: ``vertical`` (stories and reels, 9:16) or ``feed`` (everything else)."""
    return "vertical" if aspect == "9:16" else "feed"


class VariantFactors(BaseModel):
    """What the learner varies between variants of one product: template, backdrop colour, aspect and kind
    (still or turntable). The one record of them, wherever they travel (plan, ledger rows, creatives, the
    market)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: Annotated[str, AfterValidator(lambda name: get_template(name).name)]
    colour: HexColour
    aspect: Annotated[str, AfterValidator(check_aspect)]
    kind: Literal[KINDS] = "still"  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _video_placement(self) -> VariantFactors:
        if self.kind == "turntable" and self.aspect not in VIDEO_ASPECTS:
            raise ValueError(f"a turntable runs in {', '.join(VIDEO_ASPECTS)}, not {self.aspect}")
        return self

    @classmethod
    def of(cls, row) -> VariantFactors:
        """The factors of a mapping that carries them among other fields (a ledger row, a frame row); a row
        from before kinds were a factor is a still."""
        kind = row.get("kind")  # a frame row of such a variant holds NaN
        return cls(template=row["template"], colour=row["colour"], aspect=row["aspect"],
                   kind=kind if isinstance(kind, str) else "still")  # fmt: skip

    @property
    def camera(self) -> str:
        return get_template(self.template).camera

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.template, self.colour, self.aspect, self.kind

    def as_dict(self) -> dict[str, str]:
        return self.model_dump()


#: The factor names, in the order of ``VariantFactors.key``.
FACTOR_NAMES: tuple[str, ...] = tuple(VariantFactors.model_fields)
