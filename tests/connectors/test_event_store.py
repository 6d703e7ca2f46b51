"""The event store's per-(ad, day) aggregate: what the policies read equals the snapshots it summarises."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from connectors.event_store import _KEPT, EventStore, session
from connectors.events import MetricSnapshot

AS_OF = datetime(2026, 11, 2, 12, tzinfo=UTC)


def snapshot(ad: str, variant: str, day: int, metric: str, value: float, later: int = 0) -> MetricSnapshot:
    return MetricSnapshot(type="metric_snapshot", variant_id=variant, channel="meta", external_id=ad,
                          day=date(2026, 11, day), metric=metric, value=value,
                          as_of=AS_OF + timedelta(hours=later))  # fmt: skip


def pivot(path) -> pd.DataFrame:
    """variant_daily the slow way: every snapshot, pivoted."""
    with duckdb.connect(str(path)) as con:
        frame = con.execute("select variant_id, day, metric, value from metric_snapshots").df()
    table = frame.pivot_table(index=["variant_id", "day"], columns="metric", values="value", aggfunc="sum")
    return table.reset_index()


def test_the_daily_aggregate_follows_every_upsert_and_an_older_store_is_backfilled(tmp_path):
    store = EventStore(tmp_path / "events.duckdb")
    first = [snapshot("ad1", "va", 1, "impressions", 1000), snapshot("ad1", "va", 1, "clicks", 20),
             snapshot("ad2", "va", 1, "impressions", 500), snapshot("ad3", "vb", 2, "impressions", 700)]  # fmt: skip
    store.write_batch("t", [], first, [], {})
    newer = [snapshot("ad1", "va", 1, "clicks", 25, later=1), snapshot("ad1", "va", 1, "impressions", 900, later=-1)]
    store.write_batch("t", [], newer, [], {})  # a newer click count wins; an older impression count does not
    daily = store.variant_daily().set_index(["variant_id", "day"])
    assert daily.loc[("va", pd.Timestamp("2026-11-01")), ["impressions", "clicks"]].tolist() == [1500.0, 25.0]
    assert daily.loc[("vb", pd.Timestamp("2026-11-02")), "impressions"] == 700.0
    expected = pivot(tmp_path / "events.duckdb").set_index(["variant_id", "day"])
    assert (daily["impressions"] == expected["impressions"]).all()
    assert store.variant_daily(["ad2"])["impressions"].tolist() == [500.0]  # one brief's ads only

    with duckdb.connect(str(tmp_path / "events.duckdb")) as con:  # a store written before the aggregate
        con.execute("drop table ad_daily")
    again = EventStore(tmp_path / "events.duckdb").variant_daily().set_index(["variant_id", "day"])
    pd.testing.assert_frame_equal(again, daily)


def read_offsets_elsewhere(path) -> subprocess.Popen:
    """Another process reading the store (the console, the CLI): it waits while the file is held."""
    code = f"from connectors.event_store import EventStore; print(EventStore({str(path)!r}).offsets('t'))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_a_held_connection_serves_every_store_on_the_file_undoes_a_failed_transaction_and_others_wait(tmp_path):
    path = tmp_path / "events.duckdb"
    store = EventStore(path)
    with store.held() as con:
        other = EventStore(tmp_path / "." / "events.duckdb")  # another handle on the same file, named otherwise
        with other.connect() as same, store.held() as again:
            assert same is con and again is con  # one connection, not a second open of the file
        with pytest.raises(duckdb.Error), other.connect() as c:  # a write failing halfway through a transaction
            c.execute("begin")
            c.execute("insert into consumer_offsets (topic, partition, next_offset) values ('t', 0, 5)")
            c.execute("insert into no_such_table values (1)")
        assert store.offsets("t") == {}  # undone, and the held connection still works
        reader = read_offsets_elsewhere(path)
        time.sleep(1.5)
        assert reader.poll() is None
        store.write_batch("t", [], [], [], {0: 7})
    out, _ = reader.communicate(timeout=60)
    assert out.strip() == "{0: 7}"


def test_a_session_opens_the_file_once_per_burst_and_lets_it_go_while_the_stage_waits(tmp_path):
    path = tmp_path / "events.duckdb"
    store = EventStore(path)
    with session(path, idle_s=1.0):
        kept = _KEPT.sessions[store._key]
        for partition in range(20):  # a burst of operations, from any store on the file
            EventStore(path).write_batch("t", [], [], [], {partition: 1})
        assert kept.opened == 1
        with pytest.raises(duckdb.Error), store.connect() as c:  # undone, as on a held connection
            c.execute("begin")
            c.execute("insert into consumer_offsets (topic, partition, next_offset) values ('t', 99, 5)")
            c.execute("insert into no_such_table values (1)")
        reader = read_offsets_elsewhere(path)  # the stage now waits on Meta: the file is let go
        out, _ = reader.communicate(timeout=60)
        assert ast.literal_eval(out) == {p: 1 for p in range(20)}
        assert len(store.offsets("t")) == 20 and kept.opened == 2  # opened again for the next burst
    assert not _KEPT.sessions
