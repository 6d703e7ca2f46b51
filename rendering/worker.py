"""The render worker process: imports each product once and renders many jobs from the loaded scene.

Run as ``python -m rendering.worker RESULTS_FD`` with a JSON list of ``{"job": ..., "out_root": ...}``
on stdin. One JSON line per job goes to RESULTS_FD (stdout belongs to Blender's chatter). Each render
is written into a temporary folder and renamed into place, so a failure never leaves partial files.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL.Image import Image

from creative.vocabulary import get_template
from rendering.compose import composite, save_still
from rendering.outputs import (
    RenderManifest,
    RenderResult,
    cache_key,
    input_hashes,
    result_of,
    staging_prefix,
    variant_dir,
)
from rendering.profiles import get_profile, pixel_size, safe_zone
from rendering.qa import check_products, check_render
from rendering.spec import RenderJob

#: Set by ``autoplay worker`` (and ``up --executor celery``) to the Celery worker's name, recorded in manifests.
QUEUE_WORKER_VAR = "AUTOPLAY_WORKER_NAME"

#: What a reframe aims for: a little above the QA thresholds (2.5% of the frame, 45% of its limiting side).
REFRAME_COVERAGE, REFRAME_SHARE = 0.032, 0.5


def swatches(job: RenderJob) -> dict[str, str]:
    """Every colourway of the picture, by slot; a bundle's other products' slots are named by their file."""
    out = dict(job.colourway)
    for p in job.companions:
        out |= {f"{Path(p.model_path).name}:{slot}": hex_colour for slot, hex_colour in p.colourway.items()}
    return out


class Worker:
    """State that lives as long as the process: the device, and which product the scene holds."""

    def __init__(self) -> None:
        from rendering import device

        self.device = device.select()
        self.device["warm_up_s"] = round(device.warm_up(self.device), 3)
        self.loaded: tuple | None = None
        self.normalised: dict = {}
        self.jobs_done = 0

    def render(self, job: RenderJob, out_root: Path) -> RenderResult:
        from rendering import scene  # bpy: only in this process

        started = time.perf_counter()
        product = tuple(job.products)
        if self.loaded != product:
            self.loaded = None
            self.normalised = scene.import_products(job.products)
            self.loaded = product
        imported = time.perf_counter()
        template, profile = get_template(job.template), get_profile(job.profile)
        width, height = pixel_size(job.aspect, profile)
        zone = safe_zone(job.aspect)
        scene.turn(0.0)
        staging = scene.stage(template, job.podium, job.accent)
        framing = scene.frame(template, width, height, zone, turntable=job.kind == "turntable")
        scene.configure(profile, width, height, self.device["kind"])

        final = variant_dir(out_root, job)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=staging_prefix(job.variant_id), dir=final.parent))
        try:
            exposure, delta_e = scene.calibrate(template, swatches(job), tmp)
            scene.set_exposure(exposure)
            framing = self._reframe(template, width, height, zone, job.kind == "turntable", framing, tmp)
            plate = self._plate(template, framing, width, height, zone, exposure)
            staged = time.perf_counter()
            files, measured_box, cycles_s, image = self._render_files(job, template, framing["horizon"], tmp, plate)
            rendered = time.perf_counter()
            visible, unoccluded = scene.render_masks(tmp)
            report = check_render(
                np.asarray(image), visible, job.aspect, unoccluded, framing["camera_above_floor"], delta_e
            )
            if job.companions:
                names = [Path(p.model_path).name for p in job.products]
                report = check_products(report, scene.bundle_masks(tmp), names)
            checked = time.perf_counter()
            self.jobs_done += 1
            manifest = RenderManifest(
                **{
                    "variant_id": job.variant_id,
                    "spec": job.canonical_spec(),
                    "job": job,
                    "inputs": {**input_hashes(job), "device": self.device["kind"]},
                    "cache_key": cache_key(job),
                    "size": [width, height],
                    "files": files,
                    "framing": {
                        **framing,
                        "measured_box": measured_box,
                        "safe_zone": zone.__dict__,
                        "fill": template.fill,
                    },
                    "normalised": self.normalised,
                    "staging": {**staging, "exposure": round(exposure, 3)},
                    "qa": report.as_dict(),
                    "device": self.device,
                    "worker": {
                        "pid": os.getpid(),
                        "job_number": self.jobs_done,
                        "step_pid": os.getppid(),  # the process that ran the render step: Dagster's, or Celery's
                        "hostname": socket.gethostname(),
                        "queue_worker": os.environ.get(QUEUE_WORKER_VAR),
                    },
                    "timings_s": {
                        "import": round(imported - started, 3),
                        "stage": round(staged - imported, 3),
                        "render": round(rendered - staged, 3),
                        "cycles": round(cycles_s, 3),
                        "qa": round(checked - rendered, 3),
                        "total": round(time.perf_counter() - started, 3),
                    },
                    "rendered_at": datetime.now(UTC).isoformat(),
                }
            )
            manifest.write(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return result_of(job, final, manifest)

    def _reframe(self, template, width: int, height: int, zone, turntable: bool, framing: dict, tmp: Path) -> dict:
        """Frame again from the product's real silhouette when a thin or sparse product (a lamp, a watch
        on its strap) covers too little of the frame: its mask costs milliseconds."""
        from rendering import scene

        scale = 1.0
        for _ in range(2):
            visible, _ = scene.render_masks(tmp, unoccluded=False)
            report = check_render(np.zeros((*visible.shape, 3), np.uint8), visible, "1:1")
            if report.coverage >= REFRAME_COVERAGE and report.box_share >= REFRAME_SHARE:
                break
            grow = max(
                (REFRAME_COVERAGE / max(report.coverage, 1e-4)) ** 0.5, REFRAME_SHARE / max(report.box_share, 1e-4)
            )
            scale *= min(grow, 2.0)
            framing = scene.frame(template, width, height, zone, turntable, fill_scale=scale)
        return framing

    @staticmethod
    def _plate(template, framing: dict, width: int, height: int, zone, exposure: float) -> Image | None:
        """A lifestyle scene's place behind the product, through the camera just placed; None in a studio."""
        if template.environment is None:
            return None
        from rendering import environment, scene

        return environment.plate(
            scene.environment_pixels(template.environment), framing["elevation"], framing["azimuth"],
            template.lens_mm, width, height, zone, scene.LIFESTYLE_HDRI_STRENGTH, exposure, template.environment_turn,
        )  # fmt: skip

    def _render_files(
        self, job: RenderJob, template, horizon: float, tmp: Path, plate: Image | None = None
    ) -> tuple[dict, list | None, float, Image]:
        """Render the job's files into ``tmp``: the files, the product's measured box, seconds in Cycles, and
        the still (or the turntable's poster) that QA checks."""
        from rendering import scene, video

        if job.kind == "still":
            started = time.perf_counter()
            scene.render_to(tmp / "raw.png")
            cycles_s = time.perf_counter() - started
            image, box = composite(tmp / "raw.png", template, job.colour, job.accent, horizon, plate)
            save_still(image, tmp / "still.png", tmp / "still.jpg")
            (tmp / "raw.png").unlink()
            return {"png": "still.png", "jpeg": "still.jpg"}, box, cycles_s, image

        frames = tmp / "frames"
        frames.mkdir()
        cycles_s, poster_box, poster = 0.0, None, None
        for i in range(job.frames):  # 360 degrees over n frames, the last one step before the first: a seamless loop
            scene.turn(360.0 * i / job.frames)
            started = time.perf_counter()
            scene.render_to(frames / "raw.png")
            cycles_s += time.perf_counter() - started
            image, box = composite(frames / "raw.png", template, job.colour, job.accent, horizon, plate)
            image.save(frames / f"frame_{i:04d}.png", compress_level=1)
            if i == 0:
                poster_box, poster = box, image
                save_still(image, tmp / "poster.png", tmp / "poster.jpg")
        video.encode_h264(frames / "frame_%04d.png", job.fps, tmp / "turntable.mp4")
        shutil.rmtree(frames)
        files = {"mp4": "turntable.mp4", "poster_png": "poster.png", "poster_jpeg": "poster.jpg"}
        scene.turn(0.0)  # QA masks the poster's pose
        return files, poster_box, cycles_s, poster


def main(argv: list[str]) -> int:
    results = os.fdopen(int(argv[0]), "w", buffering=1)
    tasks = json.loads(sys.stdin.read())
    worker = Worker()
    for task in tasks:
        job = RenderJob(**task["job"])
        try:
            result = worker.render(job, Path(task["out_root"]))
        except Exception as exc:  # one variant fails with its reason; the others go on
            worker.loaded = None
            traceback.print_exc()
            result = RenderResult(job.variant_id, "failed", error=str(exc))
        results.write(result.to_json() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
