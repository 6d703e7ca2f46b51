"""Render steps on GPU workers: the unattended loop through dagster-celery, Redis from Debian's redis-server
(started by the deployment), two workers on the gpu queue and one on the default queue, the Dagster instance
and MLflow's tracking server on a real PostgreSQL (Debian's, started here), renders and MLflow artifacts in an
S3-compatible server (moto's, started here). Each render worker keeps its own copy of the renders, as on a
machine of its own; the code location reads them back through S3. One render worker's step process is
killed with SIGKILL mid-step; the step runs again and nothing is rendered, stored or published twice."""

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import boto3
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance

from connectors.event_store import EventStore
from connectors.ledger import Ledger
from experiments.market import SimulatedMarket
from pipelines.demo import run_demo
from pipelines.deployment import Reporter
from pipelines.settings import load_settings
from rendering.batch import render_batch
from rendering.outputs import RenderManifest
from rendering.spec import RenderJob
from tests.conftest import EXAMPLE_BRIEF, WATERBOTTLE, deployment_env
from tests.postgres import PostgresServer
from tests.s3 import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.distributed]
BUCKET, PREFIX = "autoplay-ci", "deploy"


def pool_processes(pid: int) -> list[int]:
    """The children of a Celery worker's main process: its pool, where steps run."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def runs_blender(pid: int) -> bool:
    """Whether a pool process has Blender's worker (``rendering.worker``) among its children: not any child, as a
    fresh pool process loading the code starts short-lived ones too (``ldconfig`` for a library lookup)."""
    for child in pool_processes(pid):
        with contextlib.suppress(OSError):
            if b"rendering.worker" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                return True
    return False


class KillingReporter(Reporter):
    """Kills the render step twice while it renders: first its step process alone, at its first render (as the
    OOM killer would: Celery sees its pool process die and hands the step out again), then, as soon as the step
    runs Blender again, that worker whole, with everything it started (a machine lost: Redis hands the
    unacknowledged step to the other worker after the visibility timeout). The second kill is watched for in
    /proc, not in the event log, so a rerun quicker than the log cannot slip past."""

    def __init__(self) -> None:
        self.running, self.killed = None, []

    def started(self, running) -> None:
        self.running = running

    def rendering(self) -> list[tuple[object, int]]:
        """(gpu worker, its pool process) for every pool process running Blender, that is, a render step."""
        out = []
        for child in self.running.children:
            if child.name.startswith("celery-gpu") and child.proc.poll() is None:
                out += [(child, pid) for pid in pool_processes(child.proc.pid) if runs_blender(pid)]
        return out

    def renders(self, brief: str, done: int, total: int) -> None:
        if self.killed or done >= total:
            return
        for child, pid in self.rendering():
            os.kill(pid, signal.SIGKILL)
            self.killed.append(("step process", child.name, pid))
            threading.Thread(target=self.kill_the_rerun, daemon=True).start()
            return

    def kill_the_rerun(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for child, pid in self.rendering():
                if pid != self.killed[0][2]:
                    os.killpg(child.proc.pid, signal.SIGKILL)  # its own session: worker, pool, Blender
                    self.killed.append(("worker", child.name, pid))
                    return
            time.sleep(0.05)


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory, broker):
    root = tmp_path_factory.mktemp("celery")
    brief = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    brief["product"]["model"] = str(WATERBOTTLE)
    brief["templates"], brief["aspects"] = ["studio", "podium", "hero"], ["1:1"]
    brief["shopify"]["model_3d"] = False
    brief["autoplay"] |= {"live_variants": 6, "keep_per_generation": 3, "days_per_generation": 1}
    (root / "briefs" / brief["name"]).mkdir(parents=True)
    (root / "briefs" / brief["name"] / "brief.yaml").write_text(yaml.safe_dump(brief))
    with PostgresServer() as pg, S3Server(root / "moto.log") as s3, pytest.MonkeyPatch.context() as mp:
        for name, value in s3.env.items():  # boto3's own variables, for every process of the deployment
            mp.setenv(name, value)
        env = deployment_env(root, broker) | {
            "AUTOPLAY_EXECUTOR": "celery",
            "AUTOPLAY_RENDER_WORKERS": "2",
            "AUTOPLAY_DAGSTER_POSTGRES_URL": pg.url("dagster"),
            "MLFLOW_TRACKING_URI": pg.url("mlflow"),
            "AUTOPLAY_ARTIFACTS": f"s3://{BUCKET}/{PREFIX}",
            "AUTOPLAY_CELERY_VISIBILITY_TIMEOUT_S": "20",  # how long a lost worker's step waits to go elsewhere
        }
        settings = load_settings(env)
        reporter = KillingReporter()
        run = run_demo(settings, 1, market=SimulatedMarket(seed=5), reporter=reporter)
        yield settings, run, reporter, brief["name"]


def s3_keys(prefix: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def dagster_instance(settings) -> DagsterInstance:
    os.environ["AUTOPLAY_DAGSTER_POSTGRES_URL"] = settings.dagster_postgres_url  # its dagster.yaml reads it
    return DagsterInstance.from_config(str(settings.dagster_home))


def step_workers(settings) -> list[tuple[str, str]]:
    """(step, Celery worker) of every step execution Dagster recorded."""
    with dagster_instance(settings) as instance:
        out = []
        for record in instance.get_run_records():
            for entry in instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
                data = entry.dagster_event.engine_event_data
                if data is not None and "Celery worker" in data.metadata:  # "Executing steps ... in celery worker"
                    out.append((entry.step_key, data.metadata["Celery worker"].value))
    return out


def test_render_steps_ran_on_gpu_workers_and_every_other_step_on_the_default_worker(celery_run):
    settings, run, reporter, _ = celery_run
    steps = step_workers(settings)
    assert {s for s, _ in steps} >= {"renders", "plan", "publications", "allocation"}
    for step, worker in steps:
        assert worker.startswith("gpu-" if step == "renders" else "default-1@"), (step, worker)
    manifests = [RenderManifest.load(p.parent) for p in settings.renders_dir.glob("v*/manifest.json")]
    assert manifests and all(m.worker["queue_worker"] in ("gpu-1", "gpu-2") for m in manifests)
    assert all(m.worker["step_pid"] != os.getpid() and m.worker["hostname"] for m in manifests)


def test_a_render_step_killed_and_then_its_whole_worker_killed_is_recovered_without_a_duplicate(celery_run):
    settings, run, reporter, name = celery_run
    assert [k[0] for k in reporter.killed] == ["step process", "worker"], reporter.killed
    assert [s for s, _ in step_workers(settings)].count("renders") >= 3  # the step ran again, twice
    ledger = Ledger(EventStore(settings.event_store_path))
    variants = ledger.variants(name)
    assert set(variants["render_status"]) == {"rendered"}
    stored = [k.split("/")[2] for k in s3_keys(f"{PREFIX}/renders/") if k.endswith("/manifest.json")]
    assert sorted(stored) == sorted(set(variants["variant_id"]))  # one stored render per variant, no other
    ads = ledger.publications(name, "meta")
    assert len(ads) == len(variants) and ads["variant_id"].is_unique and ads["ad_id"].is_unique
    assert run.results[0].read_back["count"].sum() > 0  # and the day went on: insights were read back


def test_the_loop_ran_on_a_postgres_instance_and_trained_into_mlflow_on_postgres(celery_run):
    import mlflow

    settings, _, _, name = celery_run
    with dagster_instance(settings) as dagster:
        assert type(dagster.run_storage).__name__ == "PostgresRunStorage"
        assert type(dagster.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert len(dagster.get_run_records()) >= 4
    assert not (settings.dagster_home / "history").exists()  # nothing went to SQLite files
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the tracking server's, proxied to S3


def reporter_lost(celery_run) -> set[tuple[str, int]]:
    """The step processes killed (``gpu-N``, pid), the first alone, the second with its whole worker: either kill
    can land after Blender renamed a render into that worker's folder and before the step stored it."""
    return {(name.removeprefix("celery-"), pid) for _, name, pid in celery_run[2].killed}


def reported_renders(settings) -> set[tuple[int, str]]:
    """(step process, variant) of every render a step reported: ``stages.render`` stores a render in the bucket
    before it reports it, so each of these was in the bucket."""
    with dagster_instance(settings) as instance:
        return {
            (entry.dagster_event.pid, entry.dagster_event.asset_observation_data.asset_observation.partition)
            for record in instance.get_run_records()
            for entry in instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.ASSET_OBSERVATION)
        }


def test_renders_and_mlflow_artifacts_went_through_the_s3_server_and_came_back_whole(celery_run):
    settings, _, _, name = celery_run
    variants = Ledger(EventStore(settings.event_store_path)).variants(name)
    assert all(
        d == f"s3://{BUCKET}/{PREFIX}/renders/{v}" for v, d in zip(variants["variant_id"], variants["render_dir"])
    )
    lost, reported = reporter_lost(celery_run), reported_renders(settings)
    for variant_id in variants["variant_id"]:
        keys = s3_keys(f"{PREFIX}/renders/{variant_id}/")
        here = settings.renders_dir / variant_id  # the code location's copy, downloaded to publish from
        manifest = RenderManifest.load(here)
        names = sorted(k.removeprefix(f"{PREFIX}/renders/{variant_id}/") for k in keys)
        assert names == sorted([*manifest.files.values(), "manifest.json"])  # each file once, nothing else
        body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"{PREFIX}/renders/{variant_id}/manifest.json")
        assert body["Body"].read() == (here / "manifest.json").read_bytes()
        # a render in the bucket was not rendered again: every copy is the stored one, but for what a killed step
        # process finished and had not stored (so never reported) before it died
        for copy in settings.home.glob(f"workers/gpu-*/renders/{variant_id}/manifest.json"):
            if copy.read_bytes() != (here / "manifest.json").read_bytes():
                step_pid = RenderManifest.load(copy.parent).worker["step_pid"]
                assert (copy.parts[-4], step_pid) in lost and (step_pid, variant_id) not in reported, (copy, lost)
    logged = s3_keys(f"{PREFIX}/mlflow/")
    assert any(k.endswith("/leaderboard.csv") for k in logged) and any("/plots/" in k for k in logged), logged[:5]


def test_a_manifest_rendered_on_a_worker_matches_the_same_job_rendered_in_process(celery_run, tmp_path):
    settings, _, _, name = celery_run
    ledger = Ledger(EventStore(settings.event_store_path))
    variant_id = ledger.variants(name)["variant_id"].iloc[0]
    job = RenderJob.model_validate_json(ledger.render_spec(variant_id))
    [here] = render_batch([job], tmp_path)
    remote = json.loads((settings.renders_dir / variant_id / "manifest.json").read_text())
    local = json.loads((Path(here.dir) / "manifest.json").read_text())
    for key in ("variant_id", "spec", "job", "cache_key", "size", "files", "framing", "inputs"):
        assert remote[key] == local[key], key
    assert remote["qa"]["passed"] and local["qa"]["passed"]
