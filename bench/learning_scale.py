"""The policy stage on a large event store: is learning fast when the store holds 1M and 10M metric snapshots?

Builds a store with the project's own schema (``connectors.event_store``, ``connectors.ledger``): ads of many
briefs over 60 days, six metrics each, written straight into ``metric_snapshots`` in DuckDB (the aggregate
``ad_daily`` is then built as an older store's would be on open). One brief of the ledger has 60 rendered,
published variants. Then it times that brief's policy stage as the Dagster asset runs it (``stages.train``:
leaderboard, traffic by generation, factor lifts and their chart, both policies fitted) with the MLflow IO
and the contact sheet (image files) left out, and the plan of its next generation (``stages.plan``).

Figures (JSON lines): policy_stage_s_1m, policy_stage_s_10m (goal <= 2 s at 10M on this machine),
plan_stage_s_10m, peak_rss_mb. Usage: python bench/learning_scale.py [--quick] (1M only)
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from figures import figure  # noqa: E402

from connectors.artifacts import FolderStore  # noqa: E402
from connectors.event_store import DAILY_METRICS, EventStore  # noqa: E402
from connectors.ledger import Ledger  # noqa: E402
from creative.brief import load_brief  # noqa: E402
from creative.decision import Decision  # noqa: E402
from experiments import planning  # noqa: E402
from experiments.tracking import TrackingTarget  # noqa: E402
from pipelines import stages  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DAYS, VARIANTS = 60, 60


def write_snapshots(path: Path, snapshots: int) -> None:
    """The snapshots, written in a child process (so the peak memory measured is the stages', not DuckDB's
    bulk insert's)."""
    ads = snapshots // (DAYS * len(DAILY_METRICS))
    EventStore(path)  # the schema
    with duckdb.connect(str(path)) as con:
        metrics = ", ".join(f"('{m}', {i})" for i, m in enumerate(DAILY_METRICS))
        con.execute(f"""
            insert into metric_snapshots
            select 'meta', 'ad' || a, date '2026-09-01' + d::integer, m.metric, 'v' || (a % 5000),
                   case m.metric when 'impressions' then 1000 + (hash(a, d) % 500)
                        when 'clicks' then 20 + (hash(a, d, 1) % 20)
                        when 'spend' then 10.0 else (hash(a, d, m.i) % 5) end,
                   timestamptz '2026-11-01 00:00:00+00'
            from range({DAYS}) s(d), range({ads}) t(a), (values {metrics}) m(metric, i)
            order by d, hash(a)""")  # as ingestion writes them: day by day, every ad's in no order


def build(folder: Path, snapshots: int) -> tuple[EventStore, Ledger, object]:
    """A store of about ``snapshots`` metric snapshots; the brief under test owns ads 0..59."""
    path = folder / "events.duckdb"
    ads = snapshots // (DAYS * len(DAILY_METRICS))
    child = multiprocessing.get_context("spawn").Process(target=write_snapshots, args=(path, snapshots))
    child.start()
    child.join()
    started = time.perf_counter()
    store = EventStore(path)  # builds ad_daily from the snapshots, once
    print(f"{ads * DAYS * len(DAILY_METRICS):,} snapshots; ad_daily built in {time.perf_counter() - started:.1f} s")
    ledger = Ledger(store)
    brief = load_brief(REPO / "examples" / "waterbottle" / "brief.yaml")
    ledger.record_brief(brief.name, brief.brand, "", brief.model_dump(mode="json"))
    grid = planning.factor_grid(brief)
    rows = [{"variant_id": f"v{i}", **grid[i % len(grid)].as_dict(), "profile": "thumbnail"} for i in range(VARIANTS)]
    planned = pd.DataFrame(rows)
    decisions = [Decision("explore", r["variant_id"], grid[i % len(grid)], 0.1) for i, r in enumerate(rows)]
    ledger.start_generation(brief.name, 0, planned, decisions, opened_on=date(2026, 9, 1))
    for r in rows:
        ledger.set_render(r["variant_id"], "rendered", str(folder / r["variant_id"]))
        ledger.record_publication(brief.name, r["variant_id"], "meta", ad_id=f"ad{r['variant_id'][1:]}",
                                  adset_id=f"as{r['variant_id']}", status="ACTIVE")  # fmt: skip
    for d in range(DAYS):
        ledger.record_day(brief.name, 0, date(2026, 9, 1) + pd.Timedelta(days=d))
    return store, ledger, brief


def policy_stage(store, ledger, brief, folder: Path) -> float:
    """``stages.train`` without MLflow IO and without the contact sheet's image files."""
    stages.log_training = lambda *a, **k: "no-mlflow"  # the stage's MLflow IO, left out
    stages.generation_sheet = lambda *a, **k: folder / "sheet.png"  # composes image files of renders
    started = time.perf_counter()
    stages.train(brief, ledger, store, TrackingTarget("sqlite:///unused.db"), FolderStore(folder), folder, "bench")
    return time.perf_counter() - started


def plan_stage(store, ledger, brief) -> float:
    started = time.perf_counter()
    stages.plan(brief, ledger, store, "thumbnail", date(2026, 11, 1), "bench")
    return time.perf_counter() - started


def timed(work, *args) -> float:
    started = time.perf_counter()
    work(*args)
    return time.perf_counter() - started


METRICS = DAILY_METRICS


def pivot_daily(store: EventStore, ads: list[str]) -> pd.DataFrame:
    """How variant_daily read the evidence before the aggregate: every snapshot of the brief's ads, pivoted."""
    with store.connect() as con:
        con.register("brief_ads", pd.DataFrame({"ad_id": ads}, dtype=str))
        return con.execute(f"""
            select variant_id, day, {", ".join(f"sum(value) filter (where metric = '{m}') as {m}" for m in METRICS)}
            from metric_snapshots where external_id in (select ad_id from brief_ads)
            group by variant_id, day order by day, variant_id""").df()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 1M store only")
    args = parser.parse_args()
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store, ledger, brief = build(Path(tmp), size)
            policy_s = min(policy_stage(store, ledger, brief, Path(tmp)) for _ in range(2))
            label = f"{size // 1_000_000}m"
            figure(f"policy_stage_s_{label}", policy_s, "s", f"stages.train without MLflow IO, {size:,} snapshots")
            ads = ledger.publications(brief.name, "meta")["ad_id"].tolist()
            read_s = timed(store.variant_daily, ads)
            pivot_s = timed(pivot_daily, store, ads)
            figure(f"variant_daily_s_{label}", read_s, "s", "one brief's evidence from the ad_daily aggregate")
            figure(f"variant_daily_pivot_s_{label}", pivot_s, "s", "the same, pivoting every snapshot (before)")
            if size == sizes[-1]:
                figure(f"plan_stage_s_{label}", plan_stage(store, ledger, brief), "s", "stages.plan, same store")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figure("peak_rss_mb", peak_mb, "MB", "peak resident memory of the process running the stages")


if __name__ == "__main__":
    main()
