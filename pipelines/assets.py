"""One asset per stage of the loop. Each one only wires resources into a function of ``stages``.

Every asset of the loop but the event store is partitioned by brief (the catalog's briefs are the partitions
of ``briefs``); renders are partitioned by variant. The loop closes outside the asset graph: ``renders``
follow ``plan`` and ``publications`` publish what is rendered, in the order the sensor in
``pipelines.definitions`` requests their runs (a graph of assets cannot hold a cycle).
"""

import base64
import io
import warnings
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetObservation,
    BackfillPolicy,
    BetaWarning,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipelines import stages
from pipelines.resources import (
    ClockResource,
    KafkaResource,
    LoopResource,
    MetaResource,
    MlflowResource,
    ShopifyResource,
)
from pipelines.workers import GPU_QUEUE, QUEUE_TAG
from rendering.outputs import RenderResult

brief_partitions = DynamicPartitionsDefinition(name="briefs")
variant_partitions = DynamicPartitionsDefinition(name="variants")

# Single-run backfills (one run renders a range of variants) are "beta" in Dagster 1.13; we rely on them.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

#: Dagster's run tags for a run over a range of partitions (what a single-run backfill sets).
PARTITION_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
#: Our run tags: which brief, which step of the cadence, which generation and day.
BRIEF_TAG, STEP_TAG, GENERATION_TAG, DAY_TAG = "autoplay/brief", "autoplay/step", "autoplay/generation", "autoplay/day"
OWNERS = ["team:autoplay"]
#: What every asset of the loop shares: its group, owners and code version.
LOOP = {"group_name": "loop", "owners": OWNERS, "code_version": "2"}


def step_label(tags: dict[str, str]) -> str:
    """A run's step as `up`, the audit log and `retry` name it: "render g0 2026-11-01"."""
    return f"{tags.get(STEP_TAG)} g{tags.get(GENERATION_TAG)} {tags.get(DAY_TAG)}"


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run materialise every variant partition from ``first`` to ``last``."""
    return dict(zip(PARTITION_RANGE_TAGS, (first, last)))


def actor(context: AssetExecutionContext) -> str:
    """Who acts, for the audit log: the sensor or schedule that requested the run (or a person), and the run."""
    tags = context.run.tags
    who = tags.get("dagster/sensor_name") or tags.get("dagster/schedule_name") or "manual"
    return f"dagster:{who}:{context.run_id}"


def thumbnail_markdown(png: Path, width: int = 480) -> str:
    """A picture that shows in the Dagster UI's metadata (a small JPEG inline), then where the file is."""
    from PIL import Image

    with Image.open(png) as im:
        im = im.convert("RGB")
        im.thumbnail((width, width))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80)
    data = base64.b64encode(buf.getvalue()).decode()
    return f"![{png.name}](data:image/jpeg;base64,{data})\n\n`{png}`"


@asset(
    **LOOP,
    partitions_def=brief_partitions,
    deps=["policy"],
    kinds={"python", "duckdb"},
    description="The brief's next generation: variants kept, new combinations to render, with their decisions.",
)
def plan(context: AssetExecutionContext, loop: LoopResource, clock: ClockResource) -> MaterializeResult:
    with loop.store_session():  # one connection to the event store while its calls follow each other
        name = context.partition_key
        brief = loop.brief(name)
        result = stages.plan(
            brief,
            loop.ledger(),
            loop.store(),
            loop.render_profile,
            clock.today(),
            actor(context),
            brief_path=Path(loop.brief_path(name)),
            seed=loop.seed,
        )
        ids = result.live["variant_id"].tolist()
        context.instance.add_dynamic_partitions(variant_partitions.name, ids)
        context.log.info(
            f"{name}: generation {result.generation}: {len(result.live)} live, {len(result.new_variant_ids)} new"
        )
        return MaterializeResult(
            metadata={
                "generation": result.generation,
                "new_variants": MetadataValue.json(result.new_variant_ids),
                "live": MetadataValue.md(result.live.to_markdown(index=False)),
            }
        )


@asset(
    **LOOP,
    partitions_def=variant_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool="gpu",
    op_tags={QUEUE_TAG: GPU_QUEUE},  # with the celery executor: a GPU worker's queue
    deps=[plan],
    kinds={"blender"},
    description="Stills per variant, rendered by Blender worker processes (pool 'gpu'); a run over a range of "
    "variants imports the product once per worker.",
)
def renders(context: AssetExecutionContext, loop: LoopResource) -> MaterializeResult:
    keys = context.partition_keys
    context.log.info(f"rendering {len(keys)} variants")
    done = []

    def reported(r: RenderResult) -> None:
        done.append(r.variant_id)
        context.log_event(
            AssetObservation(
                asset_key=context.asset_key,
                partition=r.variant_id,
                metadata={"status": r.status, "done": len(done), "of": len(keys), "error": r.error or ""},
            )
        )

    results = stages.render(
        loop.ledger(),
        keys,
        loop.artifact_store(),
        actor(context),
        on_result=reported,
        max_jobs_per_worker=loop.render_max_jobs,
    )
    manifests = [r.manifest for r in results]
    return MaterializeResult(
        metadata={
            "variants": len(results),
            "cached": sum(r.status == "cached" for r in results),
            "dirs": MetadataValue.json({r.variant_id: r.dir for r in results}),
            "render_s": MetadataValue.json({m.variant_id: m.timings_s["render"] for m in manifests}),
            "device": manifests[0].device["kind"],
        }
    )


@asset(
    **LOOP,
    partitions_def=brief_partitions,
    kinds={"python"},
    description="Rendered live variants published on the brief's channels: Meta ads (stills or turntables, "
    "placements by aspect, created PAUSED) and Shopify product media (the leading variant featured; the "
    "product's 3D model when the brief asks). "
    "Nothing rendered yet, or a paused brief, publishes nothing.",
)
def publications(
    context: AssetExecutionContext, loop: LoopResource, meta: MetaResource, shopify: ShopifyResource
) -> MaterializeResult:
    with loop.store_session():  # one connection to the event store while its calls follow each other
        brief = loop.brief(context.partition_key)
        metadata = {}
        who = actor(context)
        artifacts = loop.artifact_store()  # one client for both channels
        if "meta" in brief.channels:
            published = stages.publish(brief, loop.ledger(), meta.client(brief), artifacts, who)
            context.log.info(f"published {len(published)} new Meta ads")
            metadata |= {"meta_published": len(published), "ads": MetadataValue.json(published)}
        if "shopify" in brief.channels:
            shop = shopify.client(brief)
            media = stages.publish_shopify(brief, loop.ledger(), loop.store(), shop, artifacts, who, loop.seed)
            context.log.info(f"attached {sum('media_id' in m for m in media)} renders to {brief.shopify.product_id}")
            metadata |= {"shopify": MetadataValue.json(media)}
            model = stages.publish_model_3d(brief, loop.ledger(), shop, Path(loop.home) / "models", who)
            if model is not None:
                context.log.info(
                    f"3D model on {brief.shopify.product_id}: {model['model_3d']} {model.get('error', '')}"
                )
                metadata |= {"model_3d": MetadataValue.json(model)}
        return MaterializeResult(metadata=metadata)


@asset(
    **LOOP,
    partitions_def=brief_partitions,
    deps=[publications],
    kinds={"python", "kafka"},
    description="The brief's daily ad insights up to yesterday, produced to Kafka as metric snapshots.",
)
def performance_events(
    context: AssetExecutionContext, loop: LoopResource, meta: MetaResource, kafka: KafkaResource, clock: ClockResource
) -> MaterializeResult:
    with loop.store_session():  # one connection to the event store while its calls follow each other
        brief = loop.brief(context.partition_key)
        sent = 0
        if "meta" in brief.channels:
            producer = kafka.producer()
            try:
                sent = stages.pull_insights(brief, loop.ledger(), meta.client(brief), producer, clock.today())
            finally:
                producer.close()
        context.log.info(f"produced {sent} metric snapshots to {kafka.topic}")
        return MaterializeResult(metadata={"produced": sent, "topic": kafka.topic})


@asset(
    **LOOP,
    deps=[performance_events],
    kinds={"kafka", "duckdb"},
    description="Kafka events (every brief's) in the DuckDB event store, offsets stored with the data; reads up "
    "to the end offsets seen when it started.",
    check_specs=[
        AssetCheckSpec(
            "dead_letter_share",
            asset="event_store",
            description="dead letters stay under a share of what the batch read",
        )
    ],
)
def event_store(context: AssetExecutionContext, loop: LoopResource, kafka: KafkaResource) -> MaterializeResult:
    with loop.store_session():  # one connection to the event store while its calls follow each other
        stats = stages.ingest(kafka.ingestor(loop.store()))
        context.log.info(f"ingested {stats.messages} messages in {stats.batches} batches, lag {stats.lag}")
        if stats.log_resets:
            context.log.warning(f"the broker's log was reset on partitions {stats.log_resets}; read it from the start")
        share = stats.dead_letters / stats.messages if stats.messages else 0.0
        return MaterializeResult(
            metadata={
                "messages": stats.messages,
                "stored": stats.stored,
                "duplicates": stats.duplicates,
                "snapshots": stats.snapshots,
                "dead_letters": stats.dead_letters,
                "dead_by_reason": MetadataValue.json(stats.dead_by_reason),
                "events_per_s": round(stats.messages / stats.seconds, 1) if stats.seconds else 0.0,
                "lag_by_partition": MetadataValue.json({str(p): n for p, n in stats.lag.items()}),
                "lag_total": sum(stats.lag.values()),
                "log_resets": MetadataValue.json(stats.log_resets),
            },
            check_results=[
                AssetCheckResult(
                    check_name="dead_letter_share",
                    passed=share <= kafka.max_dead_letter_share,
                    metadata={"share": round(share, 5), "limit": kafka.max_dead_letter_share},
                )
            ],
        )


@asset(
    **LOOP,
    partitions_def=brief_partitions,
    deps=[event_store],
    kinds={"python"},
    description="Meta's review of the brief's live ads: a disapproved ad is paused and its variant retired, "
    "with the reason.",
)
def review(context: AssetExecutionContext, loop: LoopResource, meta: MetaResource) -> MaterializeResult:
    with loop.store_session():  # one connection to the event store while its calls follow each other
        brief = loop.brief(context.partition_key)
        reviews = stages.review(brief, loop.ledger(), meta.client(brief), actor(context)) if brief.meta else []
        for r in reviews:
            if r.disapproved:
                context.log.warning(f"variant {r.variant_id} retired: Meta disapproved ad {r.ad_id}: {r.reason}")
        counts = {}
        for r in reviews:
            counts[r.effective_status] = counts.get(r.effective_status, 0) + 1
        return MaterializeResult(metadata={"effective_status": MetadataValue.json(counts)})


@asset(
    **LOOP,
    partitions_def=brief_partitions,
    deps=[review],
    kinds={"python"},
    description="The day's traffic split over live variants by P(best), applied as ad set budgets within the cap; "
    "a paused brief keeps every ad PAUSED.",
)
def allocation(
    context: AssetExecutionContext, loop: LoopResource, meta: MetaResource, clock: ClockResource
) -> MaterializeResult:
    with loop.store_session():  # one connection to the event store while its calls follow each other
        brief = loop.brief(context.partition_key)
        today = clock.today()
        final = context.run.tags.get(STEP_TAG) == "close"
        shares = stages.allocate(
            brief, loop.ledger(), loop.store(), meta.client(brief), today, actor(context), loop.seed, final=final
        )
        return MaterializeResult(
            metadata={
                "day": today.isoformat(),
                "paused": loop.ledger().is_paused(brief.name),
                "shares": MetadataValue.json({k: round(v, 4) for k, v in shares.items()}),
            }
        )


@asset(
    **LOOP,
    partitions_def=brief_partitions,
    deps=[event_store],
    kinds={"mlflow", "scikitlearn"},
    description="The brief's policies fitted on the store; an MLflow run with leaderboard, plots, sheet and the "
    "pyfunc model registered as the challenger.",
    check_specs=[
        AssetCheckSpec(
            "challenger_beats_champion",
            asset="policy",
            description="offline (SNIPS) estimate on the logged allocations: the challenger becomes champion "
            "only when it beats the champion; the decision is recorded in MLflow and the ledger",
        )
    ],
)
def policy(context: AssetExecutionContext, loop: LoopResource, mlflow: MlflowResource) -> MaterializeResult:
    with loop.store_session():  # one connection to the event store while its calls follow each other
        brief = loop.brief(context.partition_key)
        who = actor(context)
        out = stages.train(
            brief,
            loop.ledger(),
            loop.store(),
            mlflow.target(),
            loop.artifact_store(),
            Path(loop.home) / "contact_sheets",
            who,
            loop.seed,
        )
        decision = stages.promote(brief, loop.ledger(), loop.store(), mlflow.target(), who)
        context.log.info(decision["verdict"])
        estimates = {k: decision[k].as_dict() for k in ("challenger", "champion") if decision[k] is not None}
        return MaterializeResult(
            check_results=[
                AssetCheckResult(
                    check_name="challenger_beats_champion",
                    passed=decision["promoted"],
                    severity=AssetCheckSeverity.WARN,
                    metadata={
                        "verdict": decision["verdict"],
                        "champion_version": decision["champion_version"],
                        "estimates": MetadataValue.json(estimates),
                    },
                )
            ],
            metadata={
                "mlflow_run": MetadataValue.url(mlflow.run_url(out["run_id"])),
                "generation": out["generation"],
                "contact_sheet": MetadataValue.md(thumbnail_markdown(Path(out["sheet"]))),
                "leaderboard": MetadataValue.md(out["board"].head(10).to_markdown(index=False, floatfmt=".4f")),
            },
        )


LOOP_ASSETS = [plan, renders, publications, performance_events, event_store, review, allocation, policy]

#: What each step of the cadence materialises, in the order of the asset graph.
STEP_ASSETS = {
    "open_first": [plan],
    "open": [performance_events, event_store, policy, plan],
    "day": [publications, performance_events, event_store, review, allocation],
    "close": [performance_events, event_store, review, allocation, policy],
}
