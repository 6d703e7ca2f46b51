"""A render job and its variant id: the content hash that makes the same spec render only once."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from creative.vocabulary import ORIENTATIONS, VIDEO_ASPECTS, HexColour, check_aspect, get_template, normalise_hex
from rendering.colour import shade
from rendering.profiles import get_profile


@lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (cached per path, mtime and size)."""
    st = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


#: Template fields that describe or schedule the picture and do not change it: never part of a variant id.
PROSE_FIELDS = {"description", "kind", "window"}


def _sorted_slots(colourway: dict[str, str]) -> dict[str, str]:
    """A colourway in slot order: the order a file or a person lists them in makes no other picture."""
    return dict(sorted(colourway.items()))


class Companion(BaseModel):
    """Another product in the picture of a bundle: its file, which way is up, its colourway, its real height
    (needed where the file carries no unit: OBJ)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: str
    orientation: Literal[ORIENTATIONS] = "auto"  # type: ignore[valid-type]
    colourway: dict[str, HexColour] = Field(default_factory=dict)
    height_m: float | None = Field(default=None, gt=0.001, le=10.0)

    _colourway = field_validator("colourway")(_sorted_slots)

    def identity(self) -> dict:
        """What of it changes the picture: its content and how it is shown."""
        return {"product_sha256": file_sha256(self.model_path), "orientation": self.orientation,
                "colourway": self.colourway, "height_m": self.height_m}  # fmt: skip


class RenderJob(BaseModel):
    """One still or turntable of one product: the unit the worker renders and the loop publishes.

    ``colour`` is the backdrop; ``podium_colour`` and ``accent_colour`` (gradient end, rim-light tint)
    default to shades of it. ``colourway`` recolours the product's named material slots. ``orientation``
    says which model axis points up (``auto`` stands products lying on their side upright).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: str
    template: str
    colour: str
    aspect: str
    profile: str = "preview"
    podium_colour: HexColour | None = None
    accent_colour: HexColour | None = None
    colourway: dict[str, HexColour] = Field(default_factory=dict)
    orientation: Literal[ORIENTATIONS] = "auto"  # type: ignore[valid-type]
    kind: Literal["still", "turntable"] = "still"
    seconds: float = Field(default=4.0, gt=0, le=60, description="turntable length")
    fps: int = Field(default=24, ge=6, le=60, description="turntable frame rate")
    height_m: float | None = Field(default=None, gt=0.001, le=10.0, description="real height, to size a bundle")
    companions: tuple[Companion, ...] = Field(default=(), max_length=4, description="a bundle's other products")

    @field_validator("colour")
    @classmethod
    def _colour(cls, v: str) -> str:
        return normalise_hex(v)

    _colourway = field_validator("colourway")(_sorted_slots)

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str) -> str:
        return check_aspect(v)

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        return get_template(v).name

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        return get_profile(v).name

    @property
    def podium(self) -> str:
        """A studio podium is a shade of the backdrop; a lifestyle scene's plinth is the brand colour itself
        (its place is the backdrop)."""
        if get_template(self.template).environment:
            return self.podium_colour or self.colour
        return self.podium_colour or shade(self.colour, 0.7)

    @property
    def accent(self) -> str | None:
        return self.accent_colour or get_template(self.template).accent

    @property
    def products(self) -> list[Companion]:
        """Every product in the picture, this job's own first."""
        lead = Companion(model_path=self.model_path, orientation=self.orientation, colourway=self.colourway,
                         height_m=self.height_m)  # fmt: skip
        return [lead, *self.companions]

    def in_aspect(self, aspect: str) -> RenderJob:
        """The same picture framed for another aspect; a turntable stays one only where the aspect takes
        video, and is a still elsewhere."""
        kind = self.kind if aspect in VIDEO_ASPECTS else "still"
        return RenderJob.model_validate(self.model_dump() | {"aspect": aspect, "kind": kind})

    @property
    def frames(self) -> int:
        return max(2, round(self.seconds * self.fps)) if self.kind == "turntable" else 1

    def canonical_spec(self) -> dict:
        """What identifies the variant: what changes the picture (product content, the template's recipe,
        colours, camera, aspect, kind, profile version), and nothing else: a reworded description keeps
        every id."""
        template = get_template(self.template)
        profile = get_profile(self.profile)
        spec = {
            "product_sha256": file_sha256(self.model_path),
            "template": template.model_dump(exclude=PROSE_FIELDS, exclude_none=True),
            "colour": self.colour,
            "camera": template.camera,
            "aspect": self.aspect,
            "kind": self.kind,
            "profile": {"name": profile.name, "version": profile.version},
        }
        # Options left at their defaults stay out, so a plain still keeps the id it always had.
        extras = {
            "podium_colour": self.podium_colour,
            "accent_colour": self.accent_colour,
            "colourway": self.colourway or None,
            "orientation": None if self.orientation == "auto" else self.orientation,
            "seconds": self.seconds if self.kind == "turntable" else None,
            "fps": self.fps if self.kind == "turntable" else None,
            "bundle": [p.identity() for p in self.products] if self.companions else None,
        }
        return spec | {k: v for k, v in extras.items() if v is not None}

    @property
    def variant_id(self) -> str:
        blob = json.dumps(self.canonical_spec(), sort_keys=True, separators=(",", ":"))
        return "v" + hashlib.sha256(blob.encode()).hexdigest()[:15]
