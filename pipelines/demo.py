"""``autoplay demo``: a bounded ``autoplay up``. It has no loop of its own.

Dagster's automation (the daemon's ``autoplay_sensor``) turns the loop for every brief of the catalog, as
it does unattended; the demo stops once each brief has served ``generations`` generations (or at the first
failed run, naming the brief, the stage and the cause), then reports per brief what the loop learned.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from connectors.event_store import EventStore
from connectors.ledger import Ledger
from creative.brief import Brief
from experiments.market import SimulatedMarket
from pipelines import stages
from pipelines.deployment import DeploymentError, Reporter, deployment, turn
from pipelines.settings import Settings


class Interrupted(DeploymentError):
    """SIGINT or SIGTERM stopped the demo before it finished."""


@dataclass
class DemoResult:
    """What one brief's loop produced."""

    brief: Brief
    leaderboard: pd.DataFrame
    best_share: pd.DataFrame
    sheets: list[Path]
    read_back: pd.DataFrame


@dataclass
class DemoRun:
    results: list[DemoResult]
    renders_dir: Path
    dagster_home: Path
    mlflow_uri: str
    event_counts: dict
    where: dict[str, str]
    sandbox: dict[str, str]  # the sandboxes' addresses and throwaway tokens (what `autoplay sandbox` writes)


def run_demo(
    settings: Settings,
    generations: int = 3,
    market: SimulatedMarket | None = None,
    reporter: Reporter | None = None,
    ui_port: int | None = None,
    stop: threading.Event | None = None,
) -> DemoRun:
    """``generations`` generations of every brief in ``settings.briefs_dir``, through the daemon."""
    settings = settings.replace(max_generations=generations)
    reporter = reporter or Reporter()
    stop = stop or threading.Event()
    with deployment(settings, market, ui_port=ui_port) as running:
        reporter.started(running)
        turn(running, reporter, stop, day_seconds=0.0, bounded=True)
        catalog, market, where = running.catalog, running.market, running.where
        sandbox = running.sandboxes.addresses() if running.sandboxes else {}
    if stop.is_set():
        raise Interrupted("interrupted; everything it started was stopped")
    store = EventStore(settings.event_store_path)
    ledger = Ledger(store)
    results = []
    for name, brief in catalog.briefs.items():
        board, _ = stages.current_leaderboard(brief, ledger, store, settings.seed)
        best = best_live_share(ledger, store, brief, market) if market is not None else pd.DataFrame()
        sheets = sorted((settings.sheets_dir / name).glob("generation-*.png"))
        ads = ledger.publications(name, "meta")["ad_id"].tolist()
        variants = ledger.variants(name)["variant_id"].tolist()
        results.append(DemoResult(brief, board, best, sheets, store.read_back(ads, variants)))
    return DemoRun(
        results,
        settings.renders_dir,
        settings.dagster_home,
        settings.mlflow_tracking_uri,
        store.counts(),
        where,
        sandbox,
    )


def best_live_share(ledger: Ledger, store: EventStore, brief: Brief, market: SimulatedMarket) -> pd.DataFrame:
    """Per generation: the truly best live variant (the sandbox knows the rates) and its traffic share."""
    traffic = stages.traffic_by_generation(ledger, store, brief)
    variants = ledger.variants(brief.name).set_index("variant_id")
    traffic["true_rate"] = [
        market.true_ctr(variants.loc[v, ["template", "colour", "aspect"]].to_dict()) for v in traffic["variant_id"]
    ]
    best = traffic.loc[traffic.groupby("generation")["true_rate"].idxmax()]
    return best[["generation", "variant_id", "true_rate", "share", "impressions"]].reset_index(drop=True)
