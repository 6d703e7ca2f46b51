"""The Dagster ``Definitions`` of autoplay: assets, resources, the autoplay schedule and render sensor.

Resources come from ``pipelines.settings`` (the environment). With no KAFKA_BOOTSTRAP_SERVERS or
META_GRAPH_URL set, they point at the embedded broker and sandbox that ``autoplay demo`` starts.
"""

import time

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)

from connectors.meta import DEFAULT_GRAPH_URL
from pipelines.assets import LOOP_ASSETS, event_store, partition_range_tags, renders, variant_partitions
from pipelines.resources import (
    ClockResource,
    KafkaResource,
    LoopResource,
    MetaResource,
    MlflowResource,
    ShopifyResource,
)
from pipelines.settings import Settings, load_settings

loop_job = define_asset_job(
    "autoplay_loop",
    selection=AssetSelection.all() - AssetSelection.assets(renders),
    description="Plan, publish what is rendered, allocate, read back, ingest and train.",
)
ingest_job = define_asset_job("ingest_events", selection=AssetSelection.assets(event_store))
render_job = define_asset_job(
    "render_variants", selection=AssetSelection.assets(renders), partitions_def=variant_partitions
)

autoplay_schedule = ScheduleDefinition(
    name="autoplay",
    job=loop_job,
    cron_schedule="0 6 * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Autoplay: one turn of the loop a day. Stopping it is the pause switch for the loop.",
)


@sensor(job=render_job, default_status=DefaultSensorStatus.STOPPED, minimum_interval_seconds=60)
def render_sensor(context: SensorEvaluationContext) -> SensorResult:
    """Requests one render run over the planned variants not rendered yet (from the first to the last of
    them; rendered ones in between are cache hits), so a worker imports the product once for all."""
    keys = context.instance.get_dynamic_partitions(variant_partitions.name)
    done = context.instance.get_materialized_partitions(renders.key)
    todo = [i for i, k in enumerate(keys) if k not in done]
    if not todo:
        return SensorResult(run_requests=[])
    first, last = keys[todo[0]], keys[todo[-1]]
    return SensorResult(run_requests=[RunRequest(run_key=f"{first}..{last}", tags=partition_range_tags(first, last))])


@sensor(job=ingest_job, default_status=DefaultSensorStatus.STOPPED, minimum_interval_seconds=30)
def ingest_sensor(context: SensorEvaluationContext, loop: LoopResource, kafka: KafkaResource) -> SensorResult:
    """Ingests when consumer lag passes a threshold, or when the interval has passed since the last run."""
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


def build_resources(settings: Settings, sandbox_url: str = "", seed: int = 0, shop_url: str = "") -> dict:
    """Resources for these settings; ``sandbox_url`` points Meta and the clock at a running sandbox,
    ``shop_url`` Shopify at a sandbox shop. Tokens are EnvVars: run config shows their names only."""
    return {
        "loop": LoopResource(
            brief_path=str(settings.brief_path),
            home=str(settings.home),
            render_profile=settings.render_profile,
            render_max_jobs=settings.render_max_jobs,
            seed=seed,
        ),
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka_bootstrap_servers or "127.0.0.1:9092",
            topic=settings.events_topic,
            dead_letter_topic=settings.dead_letter_topic,
        ),
        "meta": MetaResource(
            access_token=EnvVar("META_ACCESS_TOKEN"),
            graph_url=settings.meta_graph_url or sandbox_url or DEFAULT_GRAPH_URL,
            graph_video_url=settings.meta_graph_video_url or "",
        ),
        "shopify": ShopifyResource(
            access_token=EnvVar("SHOPIFY_ACCESS_TOKEN"),
            admin_url=settings.shopify_admin_url or shop_url,
        ),
        "clock": ClockResource(sandbox_url=sandbox_url),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            experiment=settings.mlflow_experiment,
            artifact_location=settings.mlflow_artifact_location,
        ),
    }


defs = Definitions(
    assets=LOOP_ASSETS,
    jobs=[loop_job, render_job, ingest_job],
    schedules=[autoplay_schedule],
    sensors=[render_sensor, ingest_sensor],
    resources=build_resources(load_settings()),
)
