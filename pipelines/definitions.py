"""The Dagster ``Definitions`` of autoplay: assets, resources, the autoplay schedule and render sensor.

Resources come from ``pipelines.settings`` (the environment). With no KAFKA_BOOTSTRAP_SERVERS or
META_GRAPH_URL set, they point at the embedded broker and sandbox that ``autoplay demo`` starts.
"""

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
from pipelines.assets import LOOP_ASSETS, renders, variant_partitions
from pipelines.resources import ClockResource, KafkaResource, LoopResource, MetaResource, MlflowResource
from pipelines.settings import Settings, load_settings

loop_job = define_asset_job(
    "autoplay_loop",
    selection=AssetSelection.all() - AssetSelection.assets(renders),
    description="Plan, publish what is rendered, allocate, read back, ingest and train.",
)
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
    """Requests a render run for each planned variant partition that has not been materialized yet."""
    keys = context.instance.get_dynamic_partitions(variant_partitions.name)
    done = context.instance.get_materialized_partitions(renders.key)
    return SensorResult(run_requests=[RunRequest(run_key=k, partition_key=k) for k in keys if k not in done])


def build_resources(settings: Settings, sandbox_url: str = "", seed: int = 0) -> dict:
    """Resources for these settings; ``sandbox_url`` points Meta and the clock at a running sandbox."""
    return {
        "loop": LoopResource(
            brief_path=str(settings.brief_path),
            home=str(settings.home),
            render_profile=settings.render_profile,
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
    jobs=[loop_job, render_job],
    schedules=[autoplay_schedule],
    sensors=[render_sensor],
    resources=build_resources(load_settings()),
)
