"""Where a render's files live, its manifest, and the cache key that decides whether to render again."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

from rendering.spec import RenderJob

MANIFEST = "manifest.json"


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


def variant_dir(out_root: str | Path, job: RenderJob) -> Path:
    return Path(out_root) / job.variant_id


def cached_manifest(out_root: str | Path, job: RenderJob) -> dict | None:
    """The manifest of an earlier render of exactly these inputs, if its files are all there."""
    path = variant_dir(out_root, job) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if manifest.get("cache_key") != cache_key(job):
        return None
    if not all((path.parent / name).is_file() for name in manifest.get("files", {}).values()):
        return None
    return manifest


def result_of(job: RenderJob, folder: Path, manifest: dict, cached: bool = False) -> dict:
    """A render's result: ``ok`` (or ``cached``) with its folder and manifest, or ``qa_failed`` with the
    reasons its QA gave; a QA failure keeps its files for people to look at but is never published."""
    qa = manifest.get("qa") or {}
    status = "cached" if cached else "ok"
    result = {"variant_id": job.variant_id, "status": status, "dir": str(folder), "manifest": manifest}
    if qa and not qa.get("passed", False):
        result.update(status="qa_failed", error="render QA: " + "; ".join(qa.get("failures", [])))
    return result
