"""Render workers benchmark: the same generation through the in-process executor, then through dagster-celery
with 1 and with 2 workers on the gpu queue (Redis started by the deployment), on the same variants.

  renders_per_min.<scenario>:  rendered variants / the render step's seconds (its start to its success).
  render_step_s.<scenario>:    the render step's seconds.
  demo_wall_s.<scenario>:      the whole bounded run, start to stop.
  celery_overhead_s:           demo wall with celery and 1 worker minus in-process.
  s3_overhead_s:               demo wall with celery, 2 workers and the S3 artifact store (moto's server, each
                               gpu worker with its own copy) minus the same with the shared folder.

One brief, one generation, the same seed: every scenario plans and renders the same variants. On one machine
the loop's runs go one at a time (one DuckDB writer) and a generation's renders are one step, so a second
worker can only take over when the first dies, not render beside it; on 2 cores Cycles already uses both.
Prints one JSON line per figure. Usage: python bench/workers.py [--profile thumbnail] [--variants 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import yaml
from dagster import DagsterInstance
from demo import bench_env, environment, step_seconds
from figures import figure

from experiments.market import SimulatedMarket
from pipelines.demo import run_demo
from pipelines.settings import REPO, load_settings

sys.path.insert(0, str(REPO))  # the tests' S3-compatible server (moto), as the distributed tests run it
from tests.s3 import S3Server  # noqa: E402

SCENARIOS = {"in_process": {}, "celery_1": {"AUTOPLAY_EXECUTOR": "celery", "AUTOPLAY_RENDER_WORKERS": "1"},
             "celery_2": {"AUTOPLAY_EXECUTOR": "celery", "AUTOPLAY_RENDER_WORKERS": "2"},
             "celery_2_s3": {"AUTOPLAY_EXECUTOR": "celery", "AUTOPLAY_RENDER_WORKERS": "2",
                             "AUTOPLAY_ARTIFACTS": "s3://bench-workers/run"}}  # fmt: skip


def write_brief(folder: Path, variants: int) -> None:
    brief = yaml.safe_load((REPO / "examples" / "waterbottle" / "brief.yaml").read_text())
    brief["product"]["model"] = "WaterBottle.glb"  # beside the brief, as a brand would put it
    brief["templates"], brief["aspects"] = ["studio", "podium", "hero"], ["1:1"]
    brief["shopify"]["model_3d"] = False
    brief["autoplay"] |= {"live_variants": variants, "keep_per_generation": 2, "days_per_generation": 1}
    (folder / brief["name"]).mkdir(parents=True)
    (folder / brief["name"] / "brief.yaml").write_text(yaml.safe_dump(brief))
    shutil.copy(REPO / "examples" / "waterbottle" / "WaterBottle.glb", folder / brief["name"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="thumbnail")
    parser.add_argument("--variants", type=int, default=6)
    args = parser.parse_args()
    walls = {}
    for scenario, extra in SCENARIOS.items():
        root = Path(tempfile.mkdtemp(prefix=f"bench-workers-{scenario}-"))
        write_brief(root / "briefs", args.variants)
        with ExitStack() as stack:
            if "AUTOPLAY_ARTIFACTS" in extra:  # every process of the run finds the server through boto3's variables
                os.environ.update(stack.enter_context(S3Server(root / "moto.log")).env)
            env = stack.enter_context(environment(bench_env(root, root / "briefs", args.profile, extra)))
            settings = load_settings(env)
            started = time.perf_counter()
            run_demo(settings, 1, market=SimulatedMarket(seed=0))
            walls[scenario] = time.perf_counter() - started
        with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
            render_s = step_seconds(instance).get("renders", float("nan"))
        rendered = len(list(settings.renders_dir.glob("v*/manifest.json")))
        note = f"{rendered} {args.profile} stills of the bottle, one generation, 2-core CPU machine"
        figure(f"renders_per_min.{scenario}", 60 * rendered / render_s, "renders/min", note)
        figure(f"render_step_s.{scenario}", render_s, "s", note)
        figure(f"demo_wall_s.{scenario}", walls[scenario], "s", note)
    figure(
        "s3_overhead_s",
        walls["celery_2_s3"] - walls["celery_2"],
        "s",
        "one generation through dagster-celery with 2 gpu workers: S3 artifact store (moto server) minus folder",
    )
    figure(
        "celery_overhead_s",
        walls["celery_1"] - walls["in_process"],
        "s",
        "one generation's bounded run through dagster-celery (1 gpu + 1 default worker, Redis) minus in-process",
    )


if __name__ == "__main__":
    main()
