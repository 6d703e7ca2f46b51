"""The render worker process: imports each product once and renders many jobs from the loaded scene.

Run as ``python -m rendering.worker RESULTS_FD`` with a JSON list of ``{"job": ..., "out_root": ...}``
on stdin. One JSON line per job goes to RESULTS_FD (stdout belongs to Blender's chatter). Each render
is written into a temporary folder and renamed into place, so a failure never leaves partial files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from rendering.compose import composite
from rendering.outputs import MANIFEST, cache_key, input_hashes, variant_dir
from rendering.profiles import get_profile, pixel_size
from rendering.spec import RenderJob
from rendering.templates import get_template


def render_one(job: RenderJob, out_root: Path, loaded: dict) -> dict:
    from rendering import scene  # bpy: only in this process

    started = time.perf_counter()
    if loaded.get("model") != job.model_path:
        loaded.clear()
        scene.import_product(job.model_path)
        loaded["model"] = job.model_path
    imported = time.perf_counter()
    template, profile = get_template(job.template), get_profile(job.profile)
    width, height = pixel_size(job.aspect, profile)
    scene.stage(template, job.colour)
    scene.frame(template, width, height)
    scene.configure(profile, width, height)

    final = variant_dir(out_root, job)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{job.variant_id}.", dir=final.parent))
    try:
        scene.render_to(tmp / "raw.png")
        rendered = time.perf_counter()
        composite(tmp / "raw.png", template, job.colour, tmp / "still.png", tmp / "still.jpg")
        (tmp / "raw.png").unlink()
        manifest = {
            "variant_id": job.variant_id,
            "spec": job.canonical_spec(),
            "job": job.model_dump(),
            "inputs": input_hashes(job),
            "cache_key": cache_key(job),
            "size": [width, height],
            "files": {"png": "still.png", "jpeg": "still.jpg"},
            "device": {"kind": "CPU", "name": platform.processor() or platform.machine()},
            "timings_s": {
                "import": round(imported - started, 3),
                "render": round(rendered - imported, 3),
                "total": round(time.perf_counter() - started, 3),
            },
            "rendered_at": datetime.now(UTC).isoformat(),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"variant_id": job.variant_id, "status": "ok", "dir": str(final), "manifest": manifest}


def main(argv: list[str]) -> int:
    results = os.fdopen(int(argv[0]), "w", buffering=1)
    tasks = json.loads(sys.stdin.read())
    loaded: dict = {}
    for task in tasks:
        job = RenderJob(**task["job"])
        try:
            result = render_one(job, Path(task["out_root"]), loaded)
        except Exception as exc:  # one variant fails with its reason; the others go on
            loaded.clear()
            traceback.print_exc()
            result = {"variant_id": job.variant_id, "status": "failed", "error": str(exc)}
        results.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
