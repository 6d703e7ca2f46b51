"""The catalog: a folder of briefs, each in its own folder beside its product model.

One deployment serves every brief in it. A brief that fails validation is reported by file and left out;
it never stops the others. Two briefs with the same ``name`` are an error naming both files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from creative.brief import Brief, BriefError, load_brief

BRIEF_FILE = "brief.yaml"


@dataclass(frozen=True)
class Catalog:
    """The briefs found under ``root`` by name, with the file each came from, and the files refused."""

    root: Path
    briefs: dict[str, Brief] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)

    def brief(self, name: str) -> Brief:
        if name not in self.briefs:
            known = ", ".join(sorted(self.briefs)) or "none"
            raise BriefError(f"{self.root}: no brief named {name!r} (briefs: {known})")
        return self.briefs[name]

    @property
    def names(self) -> list[str]:
        return sorted(self.briefs)


def brief_files(root: Path) -> list[Path]:
    """``root/*/brief.yaml``; ``root`` may also be a single brief file."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(root.glob(f"*/{BRIEF_FILE}"))


def load_catalog(root: str | Path) -> Catalog:
    root = Path(root).resolve()
    if not root.exists():
        raise BriefError(f"{root}: no such briefs folder (set AUTOPLAY_BRIEFS or pass --briefs)")
    catalog = Catalog(root)
    for path in brief_files(root):
        try:
            brief = load_brief(path)
        except BriefError as exc:
            catalog.errors[path] = str(exc)
            continue
        if brief.name in catalog.briefs:
            other = catalog.paths[brief.name]
            catalog.errors[path] = f"{path}: field 'name': {brief.name!r} is already the name of the brief in {other}"
            continue
        catalog.briefs[brief.name] = brief
        catalog.paths[brief.name] = path
    return catalog
