"""Dagster resources: thin handles on the connectors, configured from settings and the environment.

Secrets are EnvVar references, so Dagster run config shows the variable's name, never its value.
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dagster import ConfigurableResource

from connectors.artifacts import ArtifactStore, artifact_store
from connectors.event_store import EventStore, session
from connectors.kafka_events import EventIngestor, EventProducer
from connectors.ledger import Ledger
from connectors.meta import DEFAULT_GRAPH_URL, MetaAds
from connectors.shopify import ShopifyAdmin
from creative.brief import Brief
from experiments.catalog import Catalog, load_catalog
from experiments.tracking import TrackingTarget
from pipelines.settings import kafka_client_config


class LoopResource(ConfigurableResource):
    """The catalog of briefs and the local state of the loop (event store, ledger, renders)."""

    briefs_dir: str
    home: str
    render_profile: str = "preview"
    render_max_jobs: int = 50
    seed: int = 0
    max_generations: int | None = None
    artifacts: str | None = None  # AUTOPLAY_ARTIFACTS: the render store every worker shares
    artifacts_cache: str | None = None  # AUTOPLAY_ARTIFACTS_CACHE: this machine's copy of its renders

    def artifact_store(self) -> ArtifactStore:
        cache = Path(self.artifacts_cache) if self.artifacts_cache else None
        return artifact_store(self.artifacts, Path(self.home), cache)

    def catalog(self) -> Catalog:
        return load_catalog(self.briefs_dir)

    def brief(self, name: str) -> Brief:
        return self.catalog().brief(name)

    def brief_path(self, name: str) -> str:
        return str(self.catalog().paths.get(name, ""))

    def store(self) -> EventStore:
        return self._opened().store

    @property
    def store_path(self) -> str:
        return f"{self.home}/events.duckdb"

    def ledger(self) -> Ledger:
        opened = self._opened()
        if opened.ledger is None:
            opened.ledger = Ledger(opened.store)
        return opened.ledger

    def _opened(self) -> _Opened:
        """The store (and ledger) on this home's file, made once per process and file: making them checks the
        file's tables (tens of milliseconds), and a run's steps ask for them dozens of times. A file removed
        and made again (another inode) gets new ones; nothing removes it under a running deployment (the home
        lock), where a new file taking the old one's inode number would go unnoticed."""
        path = Path(self.store_path)
        opened = _OPENED.get(path)
        if opened is None or opened.inode != _inode(path):
            store = EventStore(path)
            opened = _OPENED[path] = _Opened(_inode(path), store)
        return opened

    def store_session(self) -> AbstractContextManager[None]:
        """For one stage: its ledger and store calls share a connection while they follow each other
        (``connectors.event_store.session``), where each would open the file again."""
        return session(self.store_path)


@dataclass
class _Opened:
    inode: tuple[int, int] | None
    store: EventStore
    ledger: Ledger | None = None


_OPENED: dict[Path, _Opened] = {}


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class KafkaResource(ConfigurableResource):
    bootstrap_servers: str
    topic: str = "autoplay.events"
    dead_letter_topic: str = "autoplay.events.dead"
    max_dead_letter_share: float = 0.05

    def producer(self) -> EventProducer:
        return EventProducer(self.bootstrap_servers, self.topic, **kafka_client_config())

    def ingestor(self, store: EventStore) -> EventIngestor:
        return EventIngestor(self.bootstrap_servers, self.topic, store, self.dead_letter_topic, **kafka_client_config())


class MetaResource(ConfigurableResource):
    """The brief's ad account; ``graph_url`` (and ``graph_video_url``) point at a sandbox when set."""

    access_token: str
    graph_url: str = DEFAULT_GRAPH_URL
    graph_video_url: str = ""
    timeout_s: float = 30.0

    def client(self, brief: Brief) -> MetaAds:
        if brief.meta is None:
            raise ValueError(f"brief {brief.name}: no 'meta' section")
        return MetaAds(
            self.access_token,
            brief.meta.account_id,
            brief.meta.page_id,
            brief.meta.campaign_id,
            graph_url=self.graph_url,
            timeout=self.timeout_s,
            graph_video_url=self.graph_video_url or None,
            ad_sets=dict(brief.meta.ad_sets),
            countries=brief.meta.countries,
            max_daily_budget_cents=int(round(brief.daily_budget * 100)),  # the cap holds on every path
        )


class ShopifyResource(ConfigurableResource):
    """The brief's shop; ``admin_url`` is set only for a sandbox (production reaches https://{shop})."""

    access_token: str
    admin_url: str = ""
    timeout_s: float = 30.0

    def client(self, brief: Brief) -> ShopifyAdmin:
        if brief.shopify is None:
            raise ValueError("the brief has no 'shopify' section")
        return ShopifyAdmin(brief.shopify.shop, self.access_token, self.admin_url or None, timeout=self.timeout_s)


class ClockResource(ConfigurableResource):
    """Today's date for the loop: the system clock, or the sandbox market's clock when ``sandbox_url`` is set."""

    sandbox_url: str = ""

    def today(self) -> date:
        if not self.sandbox_url:
            return date.today()
        with urllib.request.urlopen(f"{self.sandbox_url}/sandbox/clock", timeout=10) as resp:
            return date.fromisoformat(json.load(resp)["today"])


class MlflowResource(ConfigurableResource):
    tracking_uri: str
    experiment: str = "autoplay"
    artifact_location: str | None = None
    ui_url: str = "http://127.0.0.1:5000"

    def run_url(self, run_id: str) -> str:
        """Where a data scientist opens the run (the MLflow UI over this tracking store)."""
        import mlflow

        self.target().activate()
        experiment_id = mlflow.get_run(run_id).info.experiment_id
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def target(self) -> TrackingTarget:
        return TrackingTarget(self.tracking_uri, self.experiment, self.artifact_location)
