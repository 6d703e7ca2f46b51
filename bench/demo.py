"""Demo benchmark: `autoplay demo` through the Dagster daemon, and where its wall time goes.

  demo_wall_s:             N generations of one brief at thumbnail size, from start to the last run's end
                           (broker, sandboxes, daemon start and stop included).
  stage_work_share:        the share of that wall time spent inside the loop's steps (the assets' own work,
                           MLflow logging in `policy` included), from the steps' start and success events.
  dagster_overhead_s:      the rest: daemon ticks (at most one each 5 s), the run queue, starting a run's
                           process and loading the code, and the deployment's start and stop.
  runs:                    how many Dagster runs the demo took.
  run_start_s:             median seconds from a run's STARTING to its START: the run's process start and the
                           code load (importing pipelines.definitions), paid by every run.
  run_gap_s:               median seconds from one run's end to the next run's creation: the sensor's tick.
  start_s, stop_s:         seconds from the demo's start to the first run's creation (broker, sandboxes, run
                           server, daemon), and from the last run's end to the demo's return (everything stopped).
  policy_step_s:           the `policy` steps together (fitting, MLflow run, model logging, promotion).
  step_s:                  every step's seconds summed over the runs, one line per step (``step`` names it).
Prints one JSON line per figure. Usage: python bench/demo.py [--generations 3] [--profile thumbnail]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance
from figures import figure

from experiments.market import SimulatedMarket
from pipelines.demo import run_demo
from pipelines.settings import REPO, load_settings


def step_seconds(instance: DagsterInstance) -> dict[str, float]:
    """Seconds between each step's start and its success, summed by step key over every run."""
    totals: dict[str, float] = {}
    for run in instance.get_runs():
        starts = {}
        for entry in instance.all_logs(
            run.run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
        ):
            key = entry.step_key
            if entry.dagster_event.event_type == DagsterEventType.STEP_START:
                starts[key] = entry.timestamp
            elif key in starts:
                totals[key] = totals.get(key, 0.0) + entry.timestamp - starts.pop(key)
    return totals


def run_overheads(instance: DagsterInstance) -> tuple[list[float], list[float], float, float]:
    """Per run, seconds from STARTING to START; between runs, seconds from one's end to the next's creation;
    the first run's creation and the last run's end (epoch seconds)."""
    starts, gaps, previous_end = [], [], None
    records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
    for record in records:
        created = record.create_timestamp.timestamp()
        if previous_end is not None:
            gaps.append(created - previous_end)
        marks = {}
        for entry in instance.all_logs(
            record.dagster_run.run_id,
            of_type={DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS},
        ):
            marks.setdefault(entry.dagster_event.event_type, entry.timestamp)
        if DagsterEventType.RUN_STARTING in marks and DagsterEventType.RUN_START in marks:
            starts.append(marks[DagsterEventType.RUN_START] - marks[DagsterEventType.RUN_STARTING])
        previous_end = marks.get(DagsterEventType.RUN_SUCCESS, record.end_time)
    return starts, gaps, records[0].create_timestamp.timestamp(), previous_end


def bench_env(root: Path, briefs: Path, profile: str, extra: dict | None = None) -> dict:
    """A bounded run's environment under ``root``: its own home, Dagster home and MLflow store, none of
    the caller's autoplay, Dagster or MLflow settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOPLAY_", "DAGSTER_", "MLFLOW_"))}
    return (
        clean
        | (extra or {})
        | {
            "AUTOPLAY_HOME": str(root / "home"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "AUTOPLAY_BRIEFS": str(briefs),
            "AUTOPLAY_RENDER_PROFILE": profile,
        }
    )


@contextmanager
def environment(env: dict) -> Iterator[dict]:
    """``os.environ`` is ``env`` inside: the processes the deployment starts (which inherit it) get the
    benchmark's settings, not the caller's (an AUTOPLAY_SENSOR_LOOP_S in the caller's shell reached the daemon)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--profile", default="thumbnail")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    with environment(bench_env(root, REPO / "examples", args.profile)) as env:
        settings = load_settings(env)
        started = time.time()
        run_demo(settings, args.generations, market=SimulatedMarket(seed=0))
        ended = time.time()
    wall = ended - started
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        steps = step_seconds(instance)
        runs = len(instance.get_runs())
        starts, gaps, first_created, last_end = run_overheads(instance)
    work = sum(steps.values())
    note = f"{args.generations} generations of examples/waterbottle at {args.profile}, 2-core CPU machine"
    figure("demo_wall_s", wall, "s", note=note)
    figure("stage_work_share", work / wall, "share", note="time inside the steps / demo wall time")
    figure("dagster_overhead_s", wall - work, "s", note="wall time outside the steps")
    figure("runs", runs, "runs", note="Dagster runs the sensor requested")
    figure("run_start_s", statistics.median(starts), "s", note="a run's process start and code load, median")
    figure("run_gap_s", statistics.median(gaps), "s", note="one run's end to the next one's creation, median")
    figure("start_s", first_created - started, "s", note="demo start to the first run's creation")
    figure("stop_s", ended - last_end, "s", note="the last run's end to the demo's return")
    figure("policy_step_s", steps.get("policy", 0.0), "s", note="fitting, MLflow run and model, promotion")
    for key, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
        figure("step_s", seconds, "s", note=f"step {key}, summed over the runs")


if __name__ == "__main__":
    main()
