"""Render a batch of jobs in a separate worker process, never in the caller's (Dagster's) process.

Jobs whose inputs were rendered before are answered from the cache without starting Blender. Jobs
are grouped by product so a worker imports each product once; a worker is replaced after
``max_jobs_per_worker`` jobs, so leaks in a long-running Blender stay bounded. If the worker dies, the
job it was on fails and the rest go on in a fresh worker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from connectors.processes import die_with_parent
from rendering.outputs import RenderResult, cached_manifest, dead_staging, result_of, staging_prefix, variant_dir
from rendering.spec import RenderJob

ProgressCallback = Callable[[RenderResult], None]


class RenderUnavailable(RuntimeError):
    """This machine cannot render: bpy (the ``render`` extra) is not installed."""


def render_batch(
    jobs: Sequence[RenderJob],
    out_root: str | Path,
    on_result: ProgressCallback | None = None,
    log_path: str | Path | None = None,
    max_jobs_per_worker: int = 50,
) -> list[RenderResult]:
    """Render ``jobs`` into ``out_root/<variant_id>/``; returns one result dict per job, in order."""
    if max_jobs_per_worker < 1:
        raise ValueError("max_jobs_per_worker must be at least 1")
    out_root = Path(out_root)
    for staging in dead_staging(out_root):  # a step killed with its workers before: what they left half-written
        shutil.rmtree(staging, ignore_errors=True)
    results: dict[int, RenderResult] = {}
    todo: list[tuple[int, RenderJob]] = []
    for i, job in enumerate(jobs):
        try:
            manifest = cached_manifest(out_root, job)
        except OSError as exc:  # the model file is gone: that job fails, the batch goes on
            manifest, results[i] = None, RenderResult(None, "failed", error=f"{job.model_path}: {exc.strerror}")
        if i in results:
            if on_result:
                on_result(results[i])
        elif manifest is not None:
            results[i] = result_of(job, variant_dir(out_root, job), manifest, cached=True)
            if on_result:
                on_result(results[i])
        else:
            todo.append((i, job))

    if todo and not blender_installed():
        raise RenderUnavailable("rendering needs Blender as a module: pip install 'autoplay[render]' on this machine")
    log_path = Path(log_path) if log_path else out_root / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    todo.sort(key=lambda item: json.dumps([p.model_dump() for p in item[1].products], sort_keys=True))
    while todo:
        done = _run_worker(todo[:max_jobs_per_worker], out_root, log_path, on_result)
        for (i, _), result in zip(todo, done):
            results[i] = result
        crashed = len(done) < min(len(todo), max_jobs_per_worker)
        todo = todo[len(done) :]
        if crashed:  # the worker died on todo[0]: fail that one, go on with the rest
            i, job = todo.pop(0)
            results[i] = RenderResult(job.variant_id, "failed", error=f"render worker crashed; see {log_path}")
            if on_result:
                on_result(results[i])
    return [results[i] for i in range(len(jobs))]


def blender_installed() -> bool:
    try:
        return importlib.util.find_spec("bpy") is not None
    except ImportError:
        return False


def _run_worker(todo, out_root: Path, log_path: Path, on_result) -> list[RenderResult]:
    read_fd, write_fd = os.pipe()
    payload = json.dumps([{"job": job.model_dump(), "out_root": str(out_root)} for _, job in todo])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]),
    }
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rendering.worker", str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            env=env,
            preexec_fn=die_with_parent,  # a render step killed with its worker takes its Blender along
        )
    os.close(write_fd)
    proc.stdin.write(payload.encode())
    proc.stdin.close()
    done: list[RenderResult] = []
    with os.fdopen(read_fd) as lines:
        for line in lines:
            result = RenderResult.from_json(line)
            done.append(result)
            if on_result:
                on_result(result)
    proc.wait()
    if proc.returncode != 0:  # killed mid-render: its staging folder is never renamed into place
        for _, job in todo[len(done) :]:
            for staging in out_root.glob(f"{staging_prefix(job.variant_id, proc.pid)}*"):  # its own, not others'
                shutil.rmtree(staging, ignore_errors=True)
    return done
