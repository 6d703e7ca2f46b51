"""Fault tests with the real broker: after each, the store holds exactly the valid events (count and
checksum over ids and values), garbage sits in the dead-letter table with its reason, offsets are at
the end."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from connectors.event_store import EventStore
from connectors.kafka_broker import EmbeddedBroker, ensure_topics
from connectors.kafka_events import EventIngestor, EventProducer
from connectors.ledger import Ledger
from tests.netns import NetnsHost

pytestmark = pytest.mark.slow  # Blender, the real broker or the sandboxes: the integration lane

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW = datetime.now(UTC).replace(microsecond=0)
VARIANTS = [f"v{i:03d}" for i in range(20)]


def valid_event(i: int) -> dict:
    kind = ("impression", "click", "add_to_cart", "purchase", "video_view")[i % 5]
    event = {
        "schema": "autoplay.event.v1",
        "type": kind,
        "event_id": f"e{i}",
        "variant_id": VARIANTS[i % 20],
        "channel": "shopify",
        "external_id": f"m{i % 20}",
        "count": 1 + i % 3,
        "occurred_at": (NOW - timedelta(days=i % 9, minutes=i % 60)).isoformat(),
    }  # late events too
    if kind == "purchase":
        event |= {"value": round(10 + i % 50 * 1.25, 2), "currency": "EUR"}
    return event


GARBAGE = {  # every kind of bad input, with the reason it must be dead-lettered for
    "malformed_json": lambda i: b'{"schema": "autoplay.event.v1", "type": "click", ',
    "unknown_type": lambda i: _bytes({**valid_event(i), "type": "teleport"}),
    "unknown_schema": lambda i: _bytes({**valid_event(i), "schema": "autoplay.event.v9"}),
    "missing_field": lambda i: _bytes({k: v for k, v in valid_event(i).items() if k != "variant_id"}),
    "mistyped_field": lambda i: _bytes({**valid_event(i), "count": "three"}),
    "negative_value": lambda i: _bytes({**valid_event(i), "count": -2}),
    "unknown_variant": lambda i: _bytes({**valid_event(i), "variant_id": "v-never-planned"}),
    "future_timestamp": lambda i: _bytes({**valid_event(i), "occurred_at": (NOW + timedelta(days=30)).isoformat()}),
}


def _bytes(event: dict) -> bytes:
    return json.dumps(event).encode()


def checksum(rows) -> tuple[int, str]:
    lines = sorted(f"{eid}:{float(value):.2f}:{int(count)}" for eid, value, count in rows)
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def expected(n: int) -> tuple[int, str]:
    events = [valid_event(i) for i in range(n)]
    return checksum((e["event_id"], e.get("value", 0.0), e["count"]) for e in events)


def stored(store: EventStore) -> tuple[int, str]:
    with store.connect() as con:
        return checksum(con.execute("select event_id, value, count from events").fetchall())


def new_store(path) -> EventStore:
    store = EventStore(path)
    planned = pd.DataFrame(
        {"variant_id": VARIANTS, "template": "studio", "colour": "#FFFFFF", "aspect": "1:1", "profile": "thumbnail"}
    )
    Ledger(store).start_generation("faults", 0, planned, [])
    return store


def new_topic(bootstrap: str) -> str:
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: 4, f"{topic}.dead": 1})
    return topic


def produce(bootstrap: str, topic: str, messages: list[bytes]) -> None:
    """Every message acknowledged once. The producer waits up to 2 minutes for the broker, not the endpoint's
    10 s: on a busy 2-core machine a batch of 200k can queue past 10 s, and sending an unacknowledged record
    again may store it twice (its first send may have landed), which would change the counts under test."""
    producer = EventProducer(bootstrap, topic, timeout_s=120.0)
    sent = [producer.send_raw(b"k" + raw[-3:], raw) for raw in messages]
    producer.flush()
    failed = [f for f in sent if f.failed()]
    producer.close()
    assert not failed, f"{len(failed)} messages were never acknowledged: {failed[0].exception!r}"


def assert_offsets_at_end(ingestor: EventIngestor, store: EventStore, total: int) -> None:
    assert sum(store.offsets(ingestor.topic).values()) == total
    assert sum(ingestor.lag().values()) == 0


@pytest.mark.slow
def test_every_event_twice_with_one_percent_garbage_of_every_kind(broker, tmp_path):
    n = 100_000
    rng = random.Random(5)
    messages = [_bytes(valid_event(i)) for i in range(n)]
    bad = []
    for reason, make in GARBAGE.items():
        bad += [(reason, make(rng.randrange(n))) for _ in range(n // 100 // len(GARBAGE))]
    mixed = messages + messages + [raw for _, raw in bad]  # producers retry: every event twice
    rng.shuffle(mixed)
    topic = new_topic(broker.bootstrap_servers)
    produce(broker.bootstrap_servers, topic, mixed)

    store = new_store(tmp_path / "events.duckdb")
    ingestor = EventIngestor(broker.bootstrap_servers, topic, store, f"{topic}.dead", batch_size=5000)
    stats = ingestor.run(until_idle=True, idle_s=2.0)

    assert stored(store) == expected(n)
    assert (stats.stored, stats.duplicates, stats.dead_letters) == (n, n, len(bad))
    with store.connect() as con:
        reasons = dict(con.execute("select reason, count(*) from dead_letters group by reason").fetchall())
        raw_kept = con.execute("select count(*) from dead_letters where raw is not null").fetchone()[0]
    assert reasons == dict(Counter(reason for reason, _ in bad))
    assert raw_kept == len(bad)  # the original bytes are kept
    assert_offsets_at_end(ingestor, store, len(mixed))


@pytest.mark.slow
def test_kill_minus_9_mid_batch_then_restart_loses_and_duplicates_nothing(broker, tmp_path):
    n = 200_000  # enough that a whole ingest outlasts the first kill (60,000 took under 2.5 s on 2026-12-04)
    topic = new_topic(broker.bootstrap_servers)
    produce(broker.bootstrap_servers, topic, [_bytes(valid_event(i)) for i in range(n)])
    home = tmp_path / "home"
    new_store(home / "events.duckdb")
    env = {
        **os.environ,
        "AUTOPLAY_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "AUTOPLAY_EVENTS_TOPIC": topic,
        "AUTOPLAY_DEAD_LETTER_TOPIC": f"{topic}.dead",
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), REPO) if p),
    }
    command = [sys.executable, "-m", "pipelines.cli", "events", "ingest", "--until-idle", "--batch-size", "500"]
    kills = 0
    for delay in (2.5, 1.0, 1.5):  # kill it three times, each while batches are being written
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    store = EventStore(home / "events.duckdb")
    assert stored(store) == expected(n)
    ingestor = EventIngestor(broker.bootstrap_servers, topic, store)
    assert_offsets_at_end(ingestor, store, n)


def test_two_consumers_splitting_the_partitions_store_the_same_as_one(broker, tmp_path):
    n = 20_000
    topic = new_topic(broker.bootstrap_servers)
    messages = [_bytes(valid_event(i)) for i in range(n)]
    produce(broker.bootstrap_servers, topic, messages + messages[: n // 4])
    one = new_store(tmp_path / "one.duckdb")
    EventIngestor(broker.bootstrap_servers, topic, one).run()
    two = new_store(tmp_path / "two.duckdb")
    members = [EventIngestor(broker.bootstrap_servers, topic, two, member=i, members=2) for i in range(2)]
    threads = [threading.Thread(target=m.run) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stored(two) == stored(one) == expected(n)
    assert two.offsets(topic) == one.offsets(topic)


def test_a_broker_restarted_empty_is_noticed_and_new_events_are_read(tmp_path, caplog):
    store = new_store(tmp_path / "events.duckdb")
    with EmbeddedBroker(log_path=tmp_path / "a.log") as first:
        port = first.port
        ensure_topics(first.bootstrap_servers, {"events": 2})
        produce(first.bootstrap_servers, "events", [_bytes(valid_event(i)) for i in range(3000)])
        EventIngestor(first.bootstrap_servers, "events", store).run()
    with EmbeddedBroker(port=port, log_path=tmp_path / "b.log") as second:  # same address, empty log
        ensure_topics(second.bootstrap_servers, {"events": 2})
        produce(second.bootstrap_servers, "events", [_bytes(valid_event(i)) for i in range(3000, 3500)])
        stats = EventIngestor(second.bootstrap_servers, "events", store).run()
        assert sorted(stats.log_resets) == [0, 1]
        assert "the log was reset" in caplog.text
        assert stored(store) == expected(3500)
        assert_offsets_at_end(EventIngestor(second.bootstrap_servers, "events", store), store, 500)


@pytest.mark.slow
@pytest.mark.skipif(not NetnsHost.available(), reason="needs root and network namespaces (ip netns)")
def test_a_30_second_network_cut_while_producing_and_consuming_heals_by_itself(tmp_path):
    host = NetnsHost().start()  # the broker runs on a test host behind a link we can take down
    try:
        broker = EmbeddedBroker(log_path=tmp_path / "kafka.log", host=host.address, command_prefix=host.exec_prefix)
        store = new_store(tmp_path / "events.duckdb")
        with broker:
            ensure_topics(broker.bootstrap_servers, {"events": 4})
            ingestor = EventIngestor(broker.bootstrap_servers, "events", store, batch_size=1000)
            stop = threading.Event()
            consumer = threading.Thread(target=ingestor.run, kwargs={"until_idle": False, "stop": stop})
            consumer.start()
            # a producer that may buffer through the 30 s outage (the ingest endpoint's answers within 10 s)
            producer = EventProducer(broker.bootstrap_servers, "events", timeout_s=120)
            n, cut_at, restore_at = 9000, 3000, 6000
            for i in range(n):
                producer.send_raw(b"k", _bytes(valid_event(i)))
                if i == cut_at:
                    producer.flush()
                    time.sleep(1.5)
                    host.cut()
                    cut_started = time.monotonic()
                if i == restore_at:  # events 3001..6000 were produced into the outage: buffered, retried
                    time.sleep(max(0.0, 30 - (time.monotonic() - cut_started)))
                    during_outage = stored(store)[0]
                    host.restore()
            producer.close()
            deadline = time.monotonic() + 120
            while stored(store)[0] < n and time.monotonic() < deadline:
                time.sleep(0.5)
            stop.set()
            consumer.join(timeout=30)
            assert during_outage <= cut_at + 1, "nothing got through while the network was cut"
            assert stored(store) == expected(n)
            assert sum(store.offsets("events").values()) == n
    finally:
        host.stop()


def test_a_reset_log_that_grew_past_the_stored_offset_is_noticed_and_nothing_is_skipped(tmp_path, caplog):
    """100 stored, the broker restarted empty, 150 new events: all 150 are read (offsets alone miss it)."""
    store = new_store(tmp_path / "events.duckdb")
    with EmbeddedBroker(log_path=tmp_path / "a.log") as first:
        port = first.port
        ensure_topics(first.bootstrap_servers, {"events": 1})
        produce(first.bootstrap_servers, "events", [_bytes(valid_event(i)) for i in range(100)])
        EventIngestor(first.bootstrap_servers, "events", store).run()
    with EmbeddedBroker(port=port, log_path=tmp_path / "b.log") as second:
        ensure_topics(second.bootstrap_servers, {"events": 1})
        produce(second.bootstrap_servers, "events", [_bytes(valid_event(i)) for i in range(100, 250)])
        stats = EventIngestor(second.bootstrap_servers, "events", store).run()
        assert stats.log_resets == [0] and "the log was reset" in caplog.text
        assert stored(store) == expected(250)  # 0 events skipped
        again = EventIngestor(second.bootstrap_servers, "events", store).run()
        assert again.log_resets == [] and again.messages == 0  # the same log is recognised as the same
        assert store.stats("events")["log_resets"] == 1
