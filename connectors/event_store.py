"""The event store: a DuckDB file holding events, metric snapshots, dead letters and consumer offsets.

A batch and the offsets it advances to are written in one transaction, so a crash at any point
neither loses nor double-counts anything. Additive events are deduplicated by ``event_id``;
snapshots upsert on (channel, external id, day, metric), newest ``as_of`` winning.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from connectors.events import AdditiveEvent, MetricSnapshot

_CONNECT_LOCK = threading.Lock()


class _Kept(threading.local):
    """What this thread keeps open, by file: connections it holds (``EventStore.held``), stages' sessions
    (``session``)."""

    def __init__(self) -> None:
        self.cons: dict[Path, duckdb.DuckDBPyConnection] = {}
        self.sessions: dict[Path, _Session] = {}


_KEPT = _Kept()

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
create table if not exists ad_daily (
    channel varchar not null, external_id varchar not null, day date not null, variant_id varchar not null,
    impressions double, clicks double, spend double, add_to_cart double, purchases double, purchase_value double,
    primary key (channel, external_id, day)
);
create table if not exists dead_letters (
    topic varchar, partition integer, "offset" bigint, reason varchar not null, detail varchar,
    raw blob, received_at timestamptz default now()
);
create table if not exists ingest_batches (
    topic varchar not null, messages bigint not null, stored bigint not null, duplicates bigint not null,
    snapshots bigint not null, dead_letters bigint not null, newest_event timestamptz,
    ingested_at timestamptz default now()
);
create table if not exists consumer_offsets (
    topic varchar not null, partition integer not null, next_offset bigint not null,
    primary key (topic, partition)
);
alter table consumer_offsets add column if not exists last_fingerprint varchar;
create table if not exists log_resets (
    topic varchar not null, partition integer not null, stored_offset bigint, noticed_at timestamptz default now()
);
"""


#: The figures ``ad_daily`` keeps per ad and day (the metric snapshots pivoted).
DAILY_METRICS = ("impressions", "clicks", "spend", "add_to_cart", "purchases", "purchase_value")
_AD_DAILY = (
    "select channel, external_id, day, any_value(variant_id), "
    + ", ".join(f"sum(value) filter (where metric = '{m}')" for m in DAILY_METRICS)
    + " from metric_snapshots"
)


def _open_file(path: Path, lock_wait_s: float) -> duckdb.DuckDBPyConnection:
    # Two threads attaching the same file at the same moment conflict: one at a time, the second
    # connection shares the database the first one opened. Another process (a Dagster run, the CLI)
    # holds the file only for one operation or one burst: wait for it, up to ``lock_wait_s``.
    deadline = time.monotonic() + lock_wait_s
    delay = 0.01
    while True:
        try:
            with _CONNECT_LOCK:
                return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


@contextmanager
def _undo_on_failure(con: duckdb.DuckDBPyConnection):
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # "no transaction is active": nothing to undo
            con.execute("rollback")
        raise


class _Session:
    """A connection opened at the first operation, kept while operations follow each other, and closed by a
    thread of its own once ``idle_s`` passed without one (``session``)."""

    def __init__(self, path: Path, idle_s: float, lock_wait_s: float = 120.0) -> None:
        self.path, self.idle_s, self.lock_wait_s = path, idle_s, lock_wait_s
        self.lock = threading.Lock()
        self.con: duckdb.DuckDBPyConnection | None = None
        self.busy, self.last = 0, 0.0
        self.opened = 0  # how many times the file was opened: a test reads it
        self.done = threading.Event()
        self.closer = threading.Thread(target=self._close_when_idle, name="event-store-session", daemon=True)
        self.closer.start()

    @contextmanager
    def use(self):
        with self.lock:
            if self.con is None:
                self.con = _open_file(self.path, self.lock_wait_s)
                self.opened += 1
            self.busy += 1
            con = self.con
        try:
            yield con
        finally:
            with self.lock:
                self.busy -= 1
                self.last = time.monotonic()

    def _close_when_idle(self) -> None:
        while not self.done.wait(self.idle_s / 4):
            with self.lock:
                if self.con is not None and not self.busy and time.monotonic() - self.last >= self.idle_s:
                    self.con.close()
                    self.con = None

    def close(self) -> None:
        self.done.set()
        self.closer.join()
        with self.lock:
            if self.con is not None:
                self.con.close()
                self.con = None


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    snapshots: int = 0
    dead_letters: int = 0
    dead_by_reason: dict[str, int] = field(default_factory=dict)


class EventStore:
    """Open per operation, or kept for a stage's bursts of operations (``session``) or a page's reads (``held``),
    so Dagster steps in other processes, `autoplay up` and the console can use the same file in turn."""

    def __init__(self, path: str | Path, lock_wait_s: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = self.path.resolve()  # the file, however it was named
        with self.connect() as con:
            con.execute(SCHEMA)
            [(aggregated,)] = con.execute("select count(*) from ad_daily").fetchall()
            [(snapshots,)] = con.execute("select count(*) from metric_snapshots").fetchall()
            if snapshots and not aggregated:  # a store from before the aggregate: build it once
                con.execute(f"insert into ad_daily {_AD_DAILY} group by channel, external_id, day")

    @contextmanager
    def connect(self):
        """A connection for one operation: the one this thread holds on this file (``held``), its session's
        (``session``), or a fresh one. An operation that fails on a kept connection leaves no transaction open."""
        held = _KEPT.cons.get(self._key)
        if held is not None:
            with _undo_on_failure(held):
                yield held
            return
        session = _KEPT.sessions.get(self._key)
        if session is not None:
            with session.use() as con, _undo_on_failure(con):
                yield con
            return
        con = self._open()
        try:
            yield con
        finally:
            con.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        return _open_file(self.path, self.lock_wait_s)

    @contextmanager
    def held(self):
        """Keep one connection open in this thread for a run of operations that uses it directly (an ingestion
        run, a console page). Every EventStore on the same file in this thread uses it; other processes wait
        for the file (``lock_wait_s``) meanwhile, so hold it while working, never across a wait."""
        holding = _KEPT.cons
        if self._key in holding:  # already held further up: that one
            yield holding[self._key]
            return
        con = self._open()
        holding[self._key] = con
        try:
            yield con
        finally:
            del holding[self._key]
            con.close()

    def record_reset(self, topic: str, partition: int, stored_offset: int) -> None:
        """A reset or truncated log noticed on a partition (counted in `autoplay events stats`)."""
        with self.connect() as con:
            con.execute("insert into log_resets (topic, partition, stored_offset) values (?, ?, ?)",
                        [topic, partition, stored_offset])  # fmt: skip

    def fingerprints(self, topic: str) -> dict[int, str]:
        """Per partition, the fingerprint of the last message stored (see ``kafka_events.fingerprint``)."""
        with self.connect() as con:
            rows = con.execute(
                "select partition, last_fingerprint from consumer_offsets where topic = ? and last_fingerprint "
                "is not null",
                [topic],
            ).fetchall()
        return dict(rows)

    def offsets(self, topic: str) -> dict[int, int]:
        with self.connect() as con:
            rows = con.execute(
                "select partition, next_offset from consumer_offsets where topic = ?", [topic]
            ).fetchall()
        return dict(rows)

    def write_batch(
        self,
        topic: str,
        events: list[AdditiveEvent],
        snapshots: list[MetricSnapshot],
        dead: list[dict],
        next_offsets: dict[int, int | tuple[int, str]],
    ) -> BatchResult:
        """Store one consumed batch and the offsets after it, atomically.

        Batches travel to DuckDB as Arrow columns; duplicates inside a batch are dropped in SQL (the first
        event of an id wins; for a snapshot key, the newest ``as_of``).
        """
        result = BatchResult(dead_letters=len(dead))
        with self.connect() as con:
            con.execute("begin")
            try:
                if events:
                    con.register("batch_events", _event_table(events))
                    [(inserted,)] = con.execute(  # DuckDB reports the rows actually inserted
                        "insert into events select distinct on (event_id) * from batch_events on conflict do nothing"
                    ).fetchall()
                    result.stored = int(inserted)
                    result.duplicates = len(events) - result.stored
                if snapshots:
                    con.register("batch_snapshots", _snapshot_table(snapshots))
                    con.execute("""
                        insert into metric_snapshots
                        select distinct on (channel, external_id, day, metric) * from batch_snapshots
                        order by channel, external_id, day, metric, as_of desc
                        on conflict (channel, external_id, day, metric) do update
                        set value = excluded.value, as_of = excluded.as_of, variant_id = excluded.variant_id
                        where excluded.as_of >= metric_snapshots.as_of""")
                    # the per-(ad, day) aggregate the policies read, refreshed for the keys this batch touched
                    con.execute(f"""
                        insert or replace into ad_daily {_AD_DAILY}
                        where (channel, external_id, day) in
                            (select distinct channel, external_id, day from batch_snapshots)
                        group by channel, external_id, day""")
                    result.snapshots = len(snapshots)
                if dead:
                    con.register("batch_dead", pd.DataFrame(dead, columns=_DEAD_COLUMNS))
                    con.execute(
                        'insert into dead_letters (topic, partition, "offset", reason, detail, raw) '
                        "select * from batch_dead"
                    )
                    result.dead_by_reason = dict(Counter(d["reason"] for d in dead))
                newest = max([e.occurred_at for e in events] + [s.as_of for s in snapshots], default=None)
                con.execute(
                    "insert into ingest_batches (topic, messages, stored, duplicates, snapshots, dead_letters, "
                    "newest_event) values (?, ?, ?, ?, ?, ?, ?)",
                    [
                        topic,
                        len(events) + len(snapshots) + len(dead),
                        result.stored,
                        result.duplicates,
                        result.snapshots,
                        len(dead),
                        newest,
                    ],
                )
                if next_offsets:  # offset, or (offset, fingerprint of the message before it)
                    rows = [(topic, p, *(o if isinstance(o, tuple) else (o, None))) for p, o in next_offsets.items()]
                    con.executemany(
                        "insert into consumer_offsets (topic, partition, next_offset, last_fingerprint) "
                        "values (?, ?, ?, ?) on conflict (topic, partition) do update set "
                        "next_offset = excluded.next_offset, last_fingerprint = excluded.last_fingerprint",
                        rows,
                    )
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return result

    def known_variants(self) -> set[str] | None:
        """Variant ids the loop has planned (the ledger's table), or None where there is no ledger."""
        with self.connect() as con:
            exists = con.execute("select count(*) from information_schema.tables where table_name = 'variants'")
            if not exists.fetchone()[0]:
                return None
            return {r[0] for r in con.execute("select variant_id from variants").fetchall()}

    def stats(self, topic: str) -> dict:
        """What ingestion has done: stored, duplicates dropped, dead letters by reason, newest event."""
        with self.connect() as con:
            totals = con.execute(
                "select coalesce(sum(messages), 0), coalesce(sum(stored), 0), coalesce(sum(duplicates), 0), "
                "coalesce(sum(snapshots), 0), count(*), max(newest_event) from ingest_batches where topic = ?",
                [topic],
            ).fetchone()
            reasons = con.execute(
                "select reason, count(*) from dead_letters where topic = ? group by reason order by reason", [topic]
            ).fetchall()
            resets = con.execute("select count(*) from log_resets where topic = ?", [topic]).fetchone()[0]
        return {
            "topic": topic,
            "log_resets": int(resets),
            "messages": int(totals[0]),
            "stored": int(totals[1]),
            "duplicates_dropped": int(totals[2]),
            "snapshots_upserted": int(totals[3]),
            "batches": int(totals[4]),
            "newest_event": totals[5].isoformat() if totals[5] is not None else None,
            "dead_letters": dict(reasons),
            "offsets": self.offsets(topic),
        }

    def snapshot_figures(self, keys: list[tuple]) -> dict[tuple, dict[str, float]]:
        """The stored figures for (channel, external id, day) keys, by metric."""
        if not keys:
            return {}
        frame = pd.DataFrame(keys, columns=["channel", "external_id", "day"])
        with self.connect() as con:
            con.register("wanted", frame)
            rows = con.execute(
                """select s.channel, s.external_id, s.day, s.metric, s.value from metric_snapshots s
                   join wanted w on s.channel = w.channel and s.external_id = w.external_id and s.day = w.day"""
            ).fetchall()
        out: dict[tuple, dict[str, float]] = {}
        for channel, external_id, day, metric, value in rows:
            out.setdefault((channel, external_id, day), {})[metric] = value
        return out

    def variant_daily(self, ad_ids: list[str] | None = None) -> pd.DataFrame:
        """Per variant and day: impressions, clicks, spend, carts, purchases, value.

        Read from ``ad_daily``, the per-(ad, day) aggregate ingestion keeps beside the snapshots, so a
        policy step reads one row per ad and day instead of pivoting every snapshot. ``ad_ids`` keeps one
        brief's ads: two briefs on the same product can share a variant id (the same picture) while their
        ads, audiences and evidence stay apart."""
        with self.connect() as con:
            if ad_ids is not None:
                con.register("brief_ads", pd.DataFrame({"ad_id": [str(a) for a in ad_ids]}, dtype=str))
                where = "where external_id in (select ad_id from brief_ads)"
            else:
                where = ""
            return con.execute(f"""
                select variant_id, day, {", ".join(f"sum({m}) as {m}" for m in DAILY_METRICS)}
                from ad_daily {where} group by variant_id, day order by day, variant_id""").df()

    def read_back(self, meta_ad_ids: list[str], variant_ids: list[str]) -> pd.DataFrame:
        """What came back for one brief per channel and kind: Meta's latest figures of its ads, and the
        additive events (Shopify's pixel and orders) joined to one of its ads through the url_tags, or of one
        of ``variant_ids`` with no ad named (those count, but not as joined)."""
        with self.connect() as con:
            con.register("meta_ads", pd.DataFrame({"ad_id": [str(a) for a in meta_ad_ids]}, dtype=str))
            con.register("brief_variants", pd.DataFrame({"variant_id": [str(v) for v in variant_ids]}, dtype=str))
            return con.execute("""
                select channel, type as kind, sum(count)::double as count, sum(value) as value,
                    sum(count) filter (where external_id in (select ad_id from meta_ads))::double as joined_to_ads
                from events
                where external_id in (select ad_id from meta_ads)
                    or (coalesce(external_id, '') = '' and variant_id in (select variant_id from brief_variants))
                group by channel, type
                union all
                select channel, metric as kind, sum(value) as count, null as value, sum(value) as joined_to_ads
                from metric_snapshots where external_id in (select ad_id from meta_ads) group by channel, metric
                order by channel, kind""").df()

    def counts(self) -> dict[str, int]:
        with self.connect() as con:
            return {
                t: con.execute(f"select count(*) from {t}").fetchone()[0]
                for t in ("events", "metric_snapshots", "dead_letters")
            }


_DEAD_COLUMNS = ["topic", "partition", "offset", "reason", "detail", "raw"]
_UTC_MICROS = pa.timestamp("us", tz="UTC")


def _event_table(events: list[AdditiveEvent]) -> pa.Table:
    occurred = pa.array([e.occurred_at for e in events], type=_UTC_MICROS)
    return pa.table(
        {
            "event_id": [e.event_id for e in events],
            "type": [e.type for e in events],
            "variant_id": [e.variant_id for e in events],
            "channel": [e.channel for e in events],
            "external_id": pa.array([e.external_id for e in events], type=pa.string()),
            "occurred_at": occurred,
            "day": pc.cast(occurred, pa.date32()),
            "count": pa.array([e.count for e in events], type=pa.int64()),
            "value": pa.array([e.value for e in events], type=pa.float64()),
            "currency": pa.array([e.currency for e in events], type=pa.string()),
        }
    )


def _snapshot_table(snapshots: list[MetricSnapshot]) -> pa.Table:
    return pa.table(
        {
            "channel": [s.channel for s in snapshots],
            "external_id": [s.external_id for s in snapshots],
            "day": pa.array([s.day for s in snapshots], type=pa.date32()),
            "metric": [s.metric for s in snapshots],
            "variant_id": [s.variant_id for s in snapshots],
            "value": pa.array([s.value for s in snapshots], type=pa.float64()),
            "as_of": pa.array([s.as_of for s in snapshots], type=_UTC_MICROS),
        }
    )


@contextmanager
def session(path: str | Path, idle_s: float = 0.25) -> Iterator[None]:
    """For one stage in this thread: operations on the store at ``path`` share a connection while they follow
    each other, and it is closed once ``idle_s`` pass without one (a call to Meta, a model upload), so the
    console, the CLI and other runs wait for the file no longer than a burst of operations. Each open and close
    of the file costs 15-30 ms, and a close after writes a checkpoint; a stage makes hundreds of operations.
    Stores made inside it (and their table checks) use it too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key, sessions = path.resolve(), _KEPT.sessions
    if key in sessions:  # one further up: that one
        yield
        return
    sessions[key] = kept = _Session(path, idle_s)
    try:
        yield
    finally:
        del sessions[key]
        kept.close()
