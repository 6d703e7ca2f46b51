"""The Dagster ``Definitions`` of autoplay: assets, jobs, resources, and the automation that turns the loop.

``autoplay_sensor`` is autoplay mode: on every tick of the Dagster daemon it reads the catalog of briefs
(``AUTOPLAY_BRIEFS``), adds a partition for a new brief, asks ``experiments.cadence`` what each brief's next
step is for the clock's date, and requests that step as a run with a run key per (brief, generation or day),
so a repeated tick never does a step twice. A brief with a run in flight waits for it; a failed step stays
failed (its run key is used) until someone re-executes it from the Dagster UI. A brief whose file is removed
gets its ads paused and its partition dropped.

Resources come from ``pipelines.settings`` (the environment). With no KAFKA_BOOTSTRAP_SERVERS or
META_GRAPH_URL set, they point at the embedded broker and sandbox that ``autoplay up`` starts.
"""

import time
from pathlib import Path

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    job,
    op,
    sensor,
)

from connectors.ledger import Action
from connectors.meta import DEFAULT_GRAPH_URL
from creative.brief import Brief
from experiments import cadence
from pipelines import stages, workers
from pipelines.assets import (
    BRIEF_TAG,
    DAY_TAG,
    GENERATION_TAG,
    LOOP_ASSETS,
    STEP_ASSETS,
    STEP_TAG,
    brief_partitions,
    event_store,
    partition_range_tags,
    renders,
    variant_partitions,
)
from pipelines.resources import (
    ClockResource,
    KafkaResource,
    LoopResource,
    MetaResource,
    MlflowResource,
    ShopifyResource,
)
from pipelines.retries import attempt_key
from pipelines.settings import Settings, load_settings

loop_job = define_asset_job(
    "autoplay_loop",
    selection=AssetSelection.all() - AssetSelection.assets(renders),
    partitions_def=brief_partitions,
    description="One brief's step of the loop: open a generation (read back, train, plan), or a day (publish, "
    "read back, ingest, review, allocate). The sensor chooses which assets a run materialises.",
)
render_job = define_asset_job(
    "render_variants",
    selection=AssetSelection.assets(renders),
    partitions_def=variant_partitions,
    description="Render a range of planned variants (one partition each) in Blender worker processes.",
)
ingest_job = define_asset_job(
    "ingest_events",
    selection=AssetSelection.assets(event_store),
    description="Ingest the events topic into the event store between the loop's days.",
)

IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def in_flight(instance, brief: str) -> bool:
    """Whether a run of this brief is queued or running: one step at a time per brief."""
    return bool(instance.get_run_records(RunsFilter(tags={BRIEF_TAG: brief}, statuses=IN_FLIGHT), limit=1))


def step_tags(step: cadence.Step) -> dict[str, str]:
    return {
        BRIEF_TAG: step.brief,
        STEP_TAG: step.kind,
        GENERATION_TAG: str(step.generation),
        DAY_TAG: step.day.isoformat(),
    }


def run_request(instance, step: cadence.Step) -> RunRequest:
    """The run that carries out ``step``: assets of the loop for one brief, or renders over a variant range.
    A step whose run failed and was marked to be run again gets a run key of its own (pipelines/retries.py)."""
    tags = step_tags(step)
    run_key = attempt_key(instance, step.brief, step.run_key)
    if step.kind == "render":
        keys = instance.get_dynamic_partitions(variant_partitions.name)
        span = sorted(keys.index(v) for v in step.variant_ids if v in keys)
        # one run over the range: each worker imports the product once; rendered ones inside are cache hits
        return RunRequest(
            run_key=run_key,
            job_name=render_job.name,
            tags=tags | partition_range_tags(keys[span[0]], keys[span[-1]]),
        )
    assets = STEP_ASSETS["open_first" if step.kind == "open" and step.generation == 0 else step.kind]
    return RunRequest(
        run_key=run_key,
        job_name=loop_job.name,
        partition_key=step.brief,
        asset_selection=[a.key for a in assets],
        tags=tags,
    )


def withdrawn_briefs(instance, loop: LoopResource, catalog) -> list[str]:
    """Briefs with a partition whose file is gone (a brief whose file is there but invalid is not withdrawn)."""
    missing = [n for n in instance.get_dynamic_partitions(brief_partitions.name) if n not in catalog.briefs]
    if not missing:  # the usual tick: the event store is not opened
        return []
    recorded = loop.ledger().briefs()
    paths = dict(zip(recorded["brief"], recorded["path"]))
    return [name for name in missing if not (paths.get(name) and Path(paths[name]).exists())]


@op(config_schema={"brief": str}, description="Pause every ad of a brief whose file was removed from the catalog.")
def withdraw_brief(context: OpExecutionContext, loop: LoopResource, meta: MetaResource) -> None:
    name = context.op_config["brief"]
    ledger = loop.ledger()
    spec = ledger.brief_spec(name)
    who = f"dagster:{context.run.tags.get('dagster/sensor_name', 'manual')}:{context.run_id}"
    ledger.set_paused(name, True, who, "brief file removed from the catalog")
    if spec is None or not spec.get("meta"):
        return
    ads = meta.client(Brief.model_validate(spec)).pause_all(name)
    ledger.log_action(Action(name, "pause", who, f"brief withdrawn: {len(ads)} ads paused", {"ads": ads}))


@job(name="withdraw", description="Pause a removed brief's ads.")
def withdraw_job() -> None:
    withdraw_brief()


@sensor(
    jobs=[loop_job, render_job, withdraw_job],
    minimum_interval_seconds=1,  # the least there is (0 means 30 s); evaluations come 1-2 s apart (pipelines/daemon.py)
    default_status=DefaultSensorStatus.RUNNING,
    description="Autoplay: turns the loop for every brief of the catalog, one step per brief at a time.",
)
def autoplay_sensor(context: SensorEvaluationContext, loop: LoopResource, clock: ClockResource) -> SensorResult:
    instance = context.instance
    catalog = loop.catalog()
    for error in catalog.errors.values():
        context.log.warning(f"brief left out: {error}")
    known = set(instance.get_dynamic_partitions(brief_partitions.name))
    partition_requests = []
    new = [n for n in catalog.names if n not in known]
    if new:
        partition_requests.append(brief_partitions.build_add_request(new))
    gone = withdrawn_briefs(instance, loop, catalog)
    done_withdrawing = [n for n in gone if _withdrawn(instance, n)]
    if done_withdrawing:
        partition_requests.append(brief_partitions.build_delete_request(done_withdrawing))
    requests = [
        RunRequest(
            run_key=attempt_key(instance, n, f"{n}:withdraw"),
            job_name=withdraw_job.name,
            tags={BRIEF_TAG: n, STEP_TAG: "withdraw"},
            run_config={"ops": {"withdraw_brief": {"config": {"brief": n}}}},
        )
        for n in gone
        if n not in done_withdrawing
    ]
    waiting = [n for n in catalog.names if not in_flight(instance, n)]
    if waiting:  # else every brief's run is in flight, and holds the event store: it is left to them
        today = clock.today()
        with loop.store_session():
            ledger = loop.ledger()
            for name in waiting:
                brief = catalog.briefs[name]
                progress = stages.progress(ledger, name)
                step = cadence.next_step(
                    name, progress, today, brief.autoplay.days_per_generation, loop.max_generations
                )
                if step is not None:
                    requests.append(run_request(instance, step))
    return SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests)


def _withdrawn(instance, brief: str) -> bool:
    records = instance.get_run_records(
        RunsFilter(tags={BRIEF_TAG: brief, STEP_TAG: "withdraw"}, statuses=[DagsterRunStatus.SUCCESS]), limit=1
    )
    return bool(records)


@sensor(job=ingest_job, default_status=DefaultSensorStatus.STOPPED, minimum_interval_seconds=30)
def ingest_sensor(context: SensorEvaluationContext, loop: LoopResource, kafka: KafkaResource) -> SensorResult:
    """Ingests between the loop's days, when consumer lag passes a threshold or the interval has passed."""
    settings = load_settings()
    lag = sum(kafka.ingestor(loop.store()).lag().values())
    last = float(context.cursor or 0)
    due = time.time() - last >= settings.ingest_interval_s
    if lag >= settings.ingest_lag_threshold or (due and lag > 0):
        reason = f"lag {lag}" + (" (over threshold)" if lag >= settings.ingest_lag_threshold else ", interval passed")
        return SensorResult(
            run_requests=[RunRequest(run_key=f"ingest-{time.time():.0f}", tags={"reason": reason})],
            cursor=str(time.time()),
        )
    return SensorResult(skip_reason=f"lag {lag} under {settings.ingest_lag_threshold} and interval not passed")


def build_resources(settings: Settings) -> dict:
    """Resources for these settings. Tokens are EnvVars: run config shows their names only."""
    return {
        "loop": LoopResource(
            briefs_dir=str(settings.briefs_dir),
            home=str(settings.home),
            render_profile=settings.render_profile,
            render_max_jobs=settings.render_max_jobs,
            seed=settings.seed,
            max_generations=settings.max_generations,
            artifacts=settings.artifacts,
            artifacts_cache=str(settings.artifacts_cache) if settings.artifacts_cache else None,
        ),
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka_bootstrap_servers or "127.0.0.1:9092",
            topic=settings.events_topic,
            dead_letter_topic=settings.dead_letter_topic,
        ),
        "meta": MetaResource(
            access_token=EnvVar("META_ACCESS_TOKEN"),
            graph_url=settings.meta_graph_url or DEFAULT_GRAPH_URL,
            graph_video_url=settings.meta_graph_video_url or "",
        ),
        "shopify": ShopifyResource(
            access_token=EnvVar("SHOPIFY_ACCESS_TOKEN"),
            admin_url=settings.shopify_admin_url or "",
        ),
        "clock": ClockResource(sandbox_url=settings.sandbox_clock_url or ""),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            experiment=settings.mlflow_experiment,
            artifact_location=settings.mlflow_artifact_location,
            **({"ui_url": settings.mlflow_tracking_uri} if settings.mlflow_tracking_uri.startswith("http") else {}),
        ),
    }


SETTINGS = load_settings()
defs = Definitions(
    assets=LOOP_ASSETS,
    # in-process by default: a step is seconds of work, a process start would cost as much; with
    # AUTOPLAY_EXECUTOR=celery, render steps go to GPU workers and the rest to default ones (pipelines.workers)
    executor=workers.executor(SETTINGS),
    jobs=[loop_job, render_job, ingest_job, withdraw_job],
    sensors=[autoplay_sensor, ingest_sensor],
    resources=build_resources(SETTINGS),
)
