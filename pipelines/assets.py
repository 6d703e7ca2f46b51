"""One asset per stage of the loop. Each one only wires resources into a function of ``stages``."""

import warnings
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
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

variant_partitions = DynamicPartitionsDefinition(name="variants")

# Single-run backfills (one run renders a range of variants) are "beta" in Dagster 1.13; we rely on them.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

#: Dagster's run tags for a run over a range of partitions (what a single-run backfill sets).
PARTITION_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run materialise every variant partition from ``first`` to ``last``."""
    return dict(zip(PARTITION_RANGE_TAGS, (first, last)))


@asset(group_name="loop", description="The next generation: variants kept, new combinations to render.")
def plan(context: AssetExecutionContext, loop: LoopResource) -> MaterializeResult:
    brief = loop.brief()
    result = stages.plan(brief, loop.ledger(), loop.store(), loop.render_profile, loop.seed)
    if result.new_variant_ids:
        context.instance.add_dynamic_partitions(variant_partitions.name, result.new_variant_ids)
    context.log.info(f"generation {result.generation}: {len(result.live)} live, {len(result.new_variant_ids)} new")
    return MaterializeResult(
        metadata={
            "generation": result.generation,
            "new_variants": MetadataValue.json(result.new_variant_ids),
            "live": MetadataValue.md(result.live.to_markdown(index=False)),
        }
    )


@asset(
    group_name="loop",
    partitions_def=variant_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool="gpu",
    deps=[plan],
    description="Stills per variant, rendered by Blender worker processes (pool 'gpu'); a run over a range of "
    "variants imports the product once per worker.",
)
def renders(context: AssetExecutionContext, loop: LoopResource) -> MaterializeResult:
    keys = context.partition_keys
    context.log.info(f"rendering {len(keys)} variants")
    results = stages.render(
        loop.brief(),
        loop.ledger(),
        keys,
        Path(loop.home) / "renders",
        on_result=lambda r: context.log.info(f"{r['variant_id']}: {r['status']} {r.get('error', '')}"),
        max_jobs_per_worker=loop.render_max_jobs,
    )
    manifests = [r["manifest"] for r in results]
    return MaterializeResult(
        metadata={
            "variants": len(results),
            "cached": sum(r["status"] == "cached" for r in results),
            "dirs": MetadataValue.json({r["variant_id"]: r["dir"] for r in results}),
            "render_s": MetadataValue.json({m["variant_id"]: m["timings_s"]["render"] for m in manifests}),
            "device": manifests[0]["device"]["kind"],
        }
    )


@asset(
    group_name="loop",
    deps=[renders],
    description="Rendered live variants published on the brief's channels: Meta ads (stills or turntables, "
    "placements by aspect) and Shopify product media (the leading variant featured).",
)
def publications(
    context: AssetExecutionContext, loop: LoopResource, meta: MetaResource, shopify: ShopifyResource
) -> MaterializeResult:
    brief = loop.brief()
    metadata = {}
    if "meta" in brief.channels:
        published = stages.publish(brief, loop.ledger(), meta.client(brief))
        context.log.info(f"published {len(published)} new Meta ads")
        metadata |= {"meta_published": len(published), "ads": MetadataValue.json(published)}
    if "shopify" in brief.channels:
        media = stages.publish_shopify(brief, loop.ledger(), loop.store(), shopify.client(brief), loop.seed)
        context.log.info(f"attached {sum('media_id' in m for m in media)} renders to {brief.shopify.product_id}")
        metadata |= {"shopify": MetadataValue.json(media)}
    return MaterializeResult(metadata=metadata)


@asset(
    group_name="loop",
    deps=[publications],
    description="Meta's review of the live ads: a disapproved ad is paused and its variant retired, with the reason.",
)
def review(context: AssetExecutionContext, loop: LoopResource, meta: MetaResource) -> MaterializeResult:
    brief = loop.brief()
    reviews = stages.review(brief, loop.ledger(), meta.client(brief))
    for r in reviews:
        if r.disapproved:
            context.log.warning(f"variant {r.variant_id} retired: Meta disapproved ad {r.ad_id}: {r.reason}")
    counts = {}
    for r in reviews:
        counts[r.effective_status] = counts.get(r.effective_status, 0) + 1
    return MaterializeResult(metadata={"effective_status": MetadataValue.json(counts)})


@asset(
    group_name="loop",
    deps=[review],
    description="Traffic split over live variants by P(best), applied as ad set budgets within the cap.",
)
def allocation(
    context: AssetExecutionContext, loop: LoopResource, meta: MetaResource, clock: ClockResource
) -> MaterializeResult:
    brief = loop.brief()
    shares = stages.allocate(brief, loop.ledger(), loop.store(), meta.client(brief), clock.today(), loop.seed)
    return MaterializeResult(metadata={"shares": MetadataValue.json({k: round(v, 4) for k, v in shares.items()})})


@asset(
    group_name="loop",
    deps=[allocation],
    description="Daily ad insights read back and produced to Kafka as metric snapshots.",
)
def performance_events(
    context: AssetExecutionContext, loop: LoopResource, meta: MetaResource, kafka: KafkaResource, clock: ClockResource
) -> MaterializeResult:
    brief = loop.brief()
    producer = kafka.producer()
    try:
        sent = stages.pull_insights(brief, loop.ledger(), meta.client(brief), producer, clock.today())
    finally:
        producer.close()
    context.log.info(f"produced {sent} metric snapshots to {kafka.topic}")
    return MaterializeResult(metadata={"produced": sent, "topic": kafka.topic})


@asset(
    group_name="loop",
    deps=[performance_events],
    description="Kafka events in the DuckDB event store, offsets stored with the data.",
    check_specs=[
        AssetCheckSpec(
            "dead_letter_share",
            asset="event_store",
            description="dead letters stay under a share of what the batch read",
        )
    ],
)
def event_store(context: AssetExecutionContext, loop: LoopResource, kafka: KafkaResource) -> MaterializeResult:
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
    group_name="loop",
    deps=[event_store],
    description="Policies fitted on the store; an MLflow run with leaderboard, plots, sheet and the pyfunc model "
    "registered as the challenger.",
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
    brief = loop.brief()
    out = stages.train(
        brief,
        loop.ledger(),
        loop.store(),
        mlflow.target(),
        Path(loop.home) / "contact_sheets",
        loop.seed,
    )
    decision = stages.promote(brief, loop.ledger(), loop.store(), mlflow.target())
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
            "mlflow_run_id": out["run_id"],
            "generation": out["generation"],
            "contact_sheet": MetadataValue.path(str(out["sheet"])),
            "leaderboard": MetadataValue.md(out["board"].head(10).to_markdown(index=False, floatfmt=".4f")),
        },
    )


LOOP_ASSETS = [plan, renders, publications, review, allocation, performance_events, event_store, policy]
