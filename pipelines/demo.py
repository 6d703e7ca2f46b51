"""``autoplay demo``: several generations of the loop against the sandbox, through Dagster.

Starts what the embedded defaults need (Kafka broker, sandbox Graph API with a simulated market, a
sandbox shop whose orders and pixel events follow the ads, and the ingest endpoint that receives them),
materializes the assets generation by generation, and always stops what it started.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from dagster import DagsterInstance, materialize

from connectors.kafka_broker import EmbeddedBroker, ensure_topics
from connectors.kafka_events import EventProducer
from connectors.storefront_ingest import IngestEndpoint
from experiments.brief import Brief, load_brief
from experiments.market import SimulatedMarket
from pipelines import stages
from pipelines.assets import (
    LOOP_ASSETS,
    allocation,
    event_store,
    partition_range_tags,
    performance_events,
    plan,
    policy,
    publications,
    renders,
    review,
    variant_partitions,
)
from pipelines.channels import serve_sandboxes
from pipelines.definitions import build_resources
from pipelines.settings import REPO, Settings, kafka_client_config

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class DemoResult:
    brief: Brief
    leaderboard: pd.DataFrame
    best_share: pd.DataFrame
    sheets: list[Path]
    renders_dir: Path
    dagster_home: Path
    mlflow_uri: str
    event_counts: dict
    read_back: pd.DataFrame


class Reporter:
    """What the demo tells the person watching; the CLI gives it rich progress bars."""

    def stage(self, generation: int, name: str) -> None: ...
    def renders_planned(self, generation: int, n: int) -> None: ...
    def render_done(self, variant_id: str) -> None: ...


def run_demo(
    settings: Settings,
    brief_path: Path,
    generations: int = 3,
    profile: str | None = None,
    market: SimulatedMarket | None = None,
    reporter: Reporter | None = None,
    seed: int = 0,
) -> DemoResult:
    brief = load_brief(brief_path)  # fail on a bad brief before anything starts
    reporter = reporter or Reporter()
    market = market or SimulatedMarket(seed=seed)
    settings.home.mkdir(parents=True, exist_ok=True)
    for stale in ("events.duckdb", "events.duckdb.wal"):  # the sandbox world and its broker start empty
        (settings.home / stale).unlink(missing_ok=True)
    shutil.rmtree(settings.sheets_dir / brief.name, ignore_errors=True)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    if not (settings.dagster_home / "dagster.yaml").exists():  # a new Dagster home gets the shipped config
        shutil.copy(REPO / "dagster_home" / "dagster.yaml", settings.dagster_home / "dagster.yaml")

    with ExitStack() as stack:
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            bootstrap = stack.enter_context(EmbeddedBroker(log_path=settings.home / "kafka.log")).bootstrap_servers
        ensure_topics(bootstrap, {settings.events_topic: 4, settings.dead_letter_topic: 1})
        platforms = stack.enter_context(serve_sandboxes(brief, market))
        sandbox, shop = platforms.meta, platforms.shop
        os.environ["META_ACCESS_TOKEN"] = platforms.meta_token
        os.environ["SHOPIFY_ACCESS_TOKEN"] = platforms.shop_token
        producer = EventProducer(bootstrap, settings.events_topic, **kafka_client_config())
        stack.callback(producer.close)
        endpoint = stack.enter_context(IngestEndpoint(producer, platforms.app_secret))  # the shop reports here
        shop.webhook_url, shop.pixel_url = f"{endpoint.url}/webhooks/shopify", f"{endpoint.url}/pixel"
        local = replace(
            settings,
            brief_path=Path(brief_path).resolve(),
            kafka_bootstrap_servers=bootstrap,
            meta_graph_url=sandbox.url,
            render_profile=profile or settings.render_profile,
            render_max_jobs=settings.render_max_jobs,
        )
        resources = build_resources(local, sandbox_url=sandbox.url, seed=seed, shop_url=shop.url)
        instance = stack.enter_context(DagsterInstance.get())

        def run(*assets, tags: dict | None = None) -> None:
            result = materialize(
                LOOP_ASSETS,
                selection=list(assets),
                instance=instance,
                resources=resources,
                run_config=QUIET,
                tags={"autoplay/brief": brief.name, **(tags or {})},
            )
            if not result.success:
                raise RuntimeError(f"Dagster run {result.run_id} failed; see the Dagster UI")

        ledger = resources["loop"].ledger()
        for g in range(generations):
            reporter.stage(g, "plan")
            run(plan)
            generation = ledger.current_generation(brief.name)
            new = [v for v in ledger.live(brief.name, generation).itertuples() if v.render_status != "rendered"]
            reporter.renders_planned(g, len(new))
            if new:  # one run over the new variants: each worker imports the product once
                ids = [v.variant_id for v in new]
                keys = instance.get_dynamic_partitions(variant_partitions.name)
                span = sorted(keys.index(i) for i in ids)  # a range may take in older variants: cache hits
                with _report_renders(local.renders_dir, ids, reporter):
                    run(renders, tags=partition_range_tags(keys[span[0]], keys[span[-1]]))
            reporter.stage(g, "publish")
            run(publications)
            for day in range(brief.autoplay.days_per_generation):
                reporter.stage(g, f"day {day + 1}: review, allocate, market, read back, ingest")
                run(review, allocation)
                sandbox.advance(1)
                run(performance_events, event_store)
            reporter.stage(g, "train")
            run(policy)

        store = resources["loop"].store()
        board, _ = stages.current_leaderboard(brief, ledger, store, seed)
        best = best_live_share(ledger, store, brief, market)
        sheets = sorted((settings.sheets_dir / brief.name).glob("generation-*.png"))
        return DemoResult(
            brief,
            board,
            best,
            sheets,
            settings.renders_dir,
            settings.dagster_home,
            settings.mlflow_tracking_uri,
            store.counts(),
            store.read_back(ledger.publications("meta")["ad_id"].tolist()),
        )


def best_live_share(ledger, store, brief: Brief, market: SimulatedMarket) -> pd.DataFrame:
    """Per generation: the truly best live variant (the sandbox knows the rates) and its traffic share."""
    traffic = stages.traffic_by_generation(ledger, store, brief)
    variants = ledger.variants(brief.name).set_index("variant_id")
    traffic["true_rate"] = [
        market.true_ctr(variants.loc[v, ["template", "colour", "aspect"]].to_dict()) for v in traffic["variant_id"]
    ]
    best = traffic.loc[traffic.groupby("generation")["true_rate"].idxmax()]
    return best[["generation", "variant_id", "true_rate", "share", "impressions"]].reset_index(drop=True)


@contextmanager
def _report_renders(renders_dir: Path, variant_ids: list[str], reporter: Reporter) -> Iterator[None]:
    """Advance the progress bar as each variant's manifest appears (renders run in worker processes)."""
    stop, reported = threading.Event(), set()

    def poll() -> None:
        while True:
            for v in variant_ids:
                if v not in reported and (renders_dir / v / "manifest.json").exists():
                    reported.add(v)
                    reporter.render_done(v)
            if stop.wait(0.5):
                return

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for v in variant_ids:
            if v not in reported:
                reporter.render_done(v)
