"""The event store: a DuckDB file holding events, metric snapshots, dead letters and consumer offsets.

A batch and the offsets it advances to are written in one transaction, so a crash at any point
neither loses nor double-counts anything. Additive events are deduplicated by ``event_id``;
snapshots upsert on (channel, external id, day, metric), newest ``as_of`` winning.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from connectors.events import AdditiveEvent, MetricSnapshot

SCHEMA = """
create table if not exists events (
    event_id varchar primary key, type varchar not null, variant_id varchar not null, channel varchar not null,
    external_id varchar, occurred_at timestamptz not null, day date not null, count bigint not null,
    value double not null, currency varchar
);
create table if not exists metric_snapshots (
    channel varchar not null, external_id varchar not null, day date not null, metric varchar not null,
    variant_id varchar not null, value double not null, as_of timestamptz not null,
    primary key (channel, external_id, day, metric)
);
create table if not exists dead_letters (
    topic varchar, partition integer, "offset" bigint, reason varchar not null, detail varchar,
    raw blob, received_at timestamptz default now()
);
create table if not exists consumer_offsets (
    topic varchar not null, partition integer not null, next_offset bigint not null,
    primary key (topic, partition)
);
"""


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    snapshots: int = 0
    dead_letters: int = 0
    dead_by_reason: dict[str, int] = field(default_factory=dict)


class EventStore:
    """Open per operation, so Dagster steps in other processes can use the same file in turn."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.execute(SCHEMA)

    @contextmanager
    def connect(self):
        con = duckdb.connect(str(self.path))
        try:
            yield con
        finally:
            con.close()

    def offsets(self, topic: str) -> dict[int, int]:
        with self.connect() as con:
            rows = con.execute(
                "select partition, next_offset from consumer_offsets where topic = ?", [topic]
            ).fetchall()
        return dict(rows)

    def write_batch(
        self,
        topic: str,
        events: Iterable[AdditiveEvent],
        snapshots: Iterable[MetricSnapshot],
        dead: Iterable[dict],
        next_offsets: dict[int, int],
    ) -> BatchResult:
        """Store one consumed batch and the offsets after it, atomically."""
        result = BatchResult()
        ev = pd.DataFrame([_event_row(e) for e in events], columns=_EVENT_COLUMNS)
        sn = pd.DataFrame([_snapshot_row(s) for s in snapshots], columns=_SNAPSHOT_COLUMNS)
        dl = pd.DataFrame(list(dead), columns=["topic", "partition", "offset", "reason", "detail", "raw"])
        off = pd.DataFrame(
            [(topic, p, o) for p, o in next_offsets.items()], columns=["topic", "partition", "next_offset"]
        )
        with self.connect() as con:
            con.execute("begin")
            try:
                if len(ev):
                    unique = ev.drop_duplicates("event_id")
                    con.register("batch_events", unique)
                    known = con.execute("select count(*) from events join batch_events using (event_id)").fetchone()[0]
                    con.execute("insert into events select * from batch_events on conflict do nothing")
                    result.stored = len(unique) - known
                    result.duplicates = len(ev) - result.stored
                if len(sn):
                    sn = sn.sort_values("as_of").drop_duplicates(
                        ["channel", "external_id", "day", "metric"], keep="last"
                    )
                    con.register("batch_snapshots", sn)
                    con.execute("""
                        insert into metric_snapshots select * from batch_snapshots
                        on conflict (channel, external_id, day, metric) do update
                        set value = excluded.value, as_of = excluded.as_of, variant_id = excluded.variant_id
                        where excluded.as_of >= metric_snapshots.as_of""")
                    result.snapshots = len(sn)
                if len(dl):
                    con.register("batch_dead", dl)
                    con.execute(
                        'insert into dead_letters (topic, partition, "offset", reason, detail, raw) '
                        "select * from batch_dead"
                    )
                    result.dead_letters = len(dl)
                    result.dead_by_reason = dl["reason"].value_counts().to_dict()
                if len(off):
                    con.register("batch_offsets", off)
                    con.execute("""insert into consumer_offsets select * from batch_offsets
                                   on conflict (topic, partition) do update set next_offset = excluded.next_offset""")
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return result

    def variant_daily(self) -> pd.DataFrame:
        """Per variant and day: impressions, clicks, spend, carts, purchases, value (snapshots pivoted)."""
        with self.connect() as con:
            return con.execute("""
                select variant_id, day,
                    sum(value) filter (where metric = 'impressions') as impressions,
                    sum(value) filter (where metric = 'clicks') as clicks,
                    sum(value) filter (where metric = 'spend') as spend,
                    sum(value) filter (where metric = 'add_to_cart') as add_to_cart,
                    sum(value) filter (where metric = 'purchases') as purchases,
                    sum(value) filter (where metric = 'purchase_value') as purchase_value
                from metric_snapshots group by variant_id, day order by day, variant_id""").df()

    def counts(self) -> dict[str, int]:
        with self.connect() as con:
            return {
                t: con.execute(f"select count(*) from {t}").fetchone()[0]
                for t in ("events", "metric_snapshots", "dead_letters")
            }


_EVENT_COLUMNS = [
    "event_id",
    "type",
    "variant_id",
    "channel",
    "external_id",
    "occurred_at",
    "day",
    "count",
    "value",
    "currency",
]
_SNAPSHOT_COLUMNS = ["channel", "external_id", "day", "metric", "variant_id", "value", "as_of"]


def _event_row(e: AdditiveEvent) -> tuple:
    return (
        e.event_id,
        e.type,
        e.variant_id,
        e.channel,
        e.external_id,
        e.occurred_at,
        e.occurred_at.date(),
        e.count,
        e.value,
        e.currency,
    )


def _snapshot_row(s: MetricSnapshot) -> tuple:
    return (s.channel, s.external_id, s.day, s.metric, s.variant_id, s.value, s.as_of)
