"""Where a render's files live, its manifest, and the cache key that decides whether to render again."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from creative.vocabulary import VariantFactors
from rendering.spec import RenderJob

MANIFEST = "manifest.json"


class ManifestError(ValueError):
    """A folder without a readable render manifest; the message names the file."""


class RenderManifest(BaseModel):
    """The record written beside every render's files: what was rendered, from which inputs, how it was
    framed and staged, its QA report, and where the time went."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    variant_id: str
    spec: dict
    job: RenderJob
    inputs: dict[str, str]
    cache_key: str
    size: tuple[int, int]
    files: dict[str, str]
    framing: dict
    normalised: dict
    staging: dict
    qa: dict
    device: dict
    worker: dict
    timings_s: dict[str, float]
    rendered_at: str

    @property
    def factors(self) -> VariantFactors:
        return VariantFactors.of(self.job.model_dump())

    @property
    def qa_passed(self) -> bool:
        return bool(self.qa.get("passed", True))

    @property
    def still(self) -> str:
        """The PNG still, or the turntable's poster."""
        return self.files.get("png") or self.files["poster_png"]

    @property
    def still_jpeg(self) -> str:
        return self.files.get("jpeg") or self.files["poster_jpeg"]

    @classmethod
    def load(cls, folder: str | Path) -> RenderManifest:
        path = Path(folder) / MANIFEST
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ManifestError(f"{folder}: no {MANIFEST}; pass a folder written by `autoplay render`") from None
        except (OSError, ValidationError) as exc:
            raise ManifestError(f"{path}: not a render manifest ({type(exc).__name__}: {exc})") from None

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(self.model_dump_json(indent=2))


@dataclass(frozen=True)
class RenderResult:
    """What became of one job: ``ok`` or ``cached`` (its folder and manifest), ``qa_failed`` (files kept to
    look at, never published) or ``failed`` (the reason in ``error``)."""

    variant_id: str | None
    status: Literal["ok", "cached", "qa_failed", "failed"]
    dir: str | None = None
    manifest: RenderManifest | None = None
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.status in ("ok", "cached")

    def to_json(self) -> str:
        manifest = self.manifest.model_dump(mode="json") if self.manifest else None
        return json.dumps({**self.__dict__, "manifest": manifest})

    @classmethod
    def from_json(cls, line: str) -> RenderResult:
        data = json.loads(line)
        manifest = data.pop("manifest")
        return cls(**data, manifest=RenderManifest.model_validate(manifest) if manifest else None)


@lru_cache(maxsize=1)
def code_sha256() -> str:
    """Hash of the renderer's own source: a change to how we render invalidates the cache."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def input_hashes(job: RenderJob) -> dict[str, str]:
    spec = job.canonical_spec()
    return {
        "model_sha256": spec["product_sha256"],
        "template_sha256": _sha(spec["template"]),
        "profile_sha256": _sha(spec["profile"]),
        "code_sha256": code_sha256(),
        "bpy_version": version("bpy"),
    }


def cache_key(job: RenderJob) -> str:
    return _sha({"spec": job.canonical_spec(), "inputs": input_hashes(job)})


def _sha(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def staging_prefix(variant_id: str, pid: int | None = None) -> str:
    """A render in progress is written in ``.<variant>.<host>-<pid>.*`` beside its final folder, so a later
    batch on the same host can tell one whose process was killed from one still being written."""
    return f".{variant_id}.{socket.gethostname()}-{os.getpid() if pid is None else pid}."


def dead_staging(out_root: str | Path) -> list[Path]:
    """Staging folders under ``out_root`` left by killed processes of this host (SIGKILL skips every cleanup)."""
    here = socket.gethostname()
    found = []
    for folder in Path(out_root).glob(".v*.*-*.*"):
        variant_id = folder.name.split(".")[1]
        host, _, pid = folder.name[len(variant_id) + 2 :].rsplit(".", 1)[0].rpartition("-")
        if host == here and pid.isdigit() and not _alive(int(pid)):
            found.append(folder)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def variant_dir(out_root: str | Path, job: RenderJob) -> Path:
    return Path(out_root) / job.variant_id


def cached_manifest(out_root: str | Path, job: RenderJob) -> RenderManifest | None:
    """The manifest of an earlier render of exactly these inputs, if its files are all there."""
    folder = variant_dir(out_root, job)
    try:
        manifest = RenderManifest.load(folder)
    except ManifestError:
        return None
    if manifest.cache_key != cache_key(job):
        return None
    if not all((folder / name).is_file() for name in manifest.files.values()):
        return None
    return manifest


def result_of(job: RenderJob, folder: Path, manifest: RenderManifest, cached: bool = False) -> RenderResult:
    """A render's result: ``ok`` (or ``cached``) with its folder and manifest, or ``qa_failed`` with the
    reasons its QA gave; a QA failure keeps its files for people to look at but is never published."""
    if not manifest.qa_passed:
        error = "render QA: " + "; ".join(manifest.qa.get("failures", []))
        return RenderResult(job.variant_id, "qa_failed", str(folder), manifest, error)
    return RenderResult(job.variant_id, "cached" if cached else "ok", str(folder), manifest)
