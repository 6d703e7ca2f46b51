"""A render job and its variant id: the content hash that makes the same spec render only once."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from rendering.colour import normalise_hex
from rendering.profiles import check_aspect, get_profile
from rendering.templates import get_template


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


class RenderJob(BaseModel):
    """One still of one product: the unit the worker renders and the loop publishes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: str
    template: str
    colour: str
    aspect: str
    profile: str = "preview"
    kind: Literal["still"] = "still"

    @field_validator("colour")
    @classmethod
    def _colour(cls, v: str) -> str:
        return normalise_hex(v)

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

    def canonical_spec(self) -> dict:
        """What identifies the variant: product content, template recipe, colour, camera, aspect, profile."""
        template = get_template(self.template)
        profile = get_profile(self.profile)
        return {
            "product_sha256": file_sha256(self.model_path),
            "template": template.model_dump(),
            "colour": self.colour,
            "camera": template.camera,
            "aspect": self.aspect,
            "kind": self.kind,
            "profile": {"name": profile.name, "version": profile.version},
        }

    @property
    def variant_id(self) -> str:
        blob = json.dumps(self.canonical_spec(), sort_keys=True, separators=(",", ":"))
        return "v" + hashlib.sha256(blob.encode()).hexdigest()[:15]
