"""Events through the real Kafka-protocol broker into the DuckDB store."""

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.event_store import EventStore
from connectors.events import AdditiveEvent, BadEvent, MetricSnapshot, parse_event
from connectors.kafka_broker import ensure_topics
from connectors.kafka_events import EventIngestor, EventProducer

pytestmark = pytest.mark.slow  # Blender, the real broker or the sandboxes: the integration lane

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture
def topic(broker):
    name = f"events-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap_servers, {name: 4, f"{name}.dead": 1})
    return name


def snapshot(ad, metric, value, as_of=NOW, day=date(2026, 11, 19)):
    return MetricSnapshot(
        type="metric_snapshot",
        variant_id=f"v{ad}",
        channel="meta",
        external_id=str(ad),
        day=day,
        metric=metric,
        value=value,
        as_of=as_of,
    )


def click(i):
    return AdditiveEvent(type="click", event_id=f"e{i}", variant_id="v1", channel="shopify", occurred_at=NOW)


def ingest(broker, topic, store):
    return EventIngestor(broker.bootstrap_servers, topic, store, f"{topic}.dead", batch_size=50).run(idle_s=1.0)


def test_events_land_once_snapshots_upsert_and_garbage_is_dead_lettered(broker, topic, tmp_path):
    store = EventStore(tmp_path / "events.duckdb")
    producer = EventProducer(broker.bootstrap_servers, topic)
    producer.send([click(i) for i in range(120)] + [click(i) for i in range(60)])  # producers retry
    producer.send([snapshot(1, "clicks", 10), snapshot(1, "clicks", 12, as_of=NOW + timedelta(hours=6))])
    producer.send_raw(b"v1", b"{broken json")
    producer.send_raw(b"v1", b'{"schema": "autoplay.event.v1", "type": "teleport", "variant_id": "v1", "channel": "x"}')
    producer.send_raw(b"v1", click(999).model_dump_json(by_alias=True).replace('"count":1', '"count":-4').encode())
    producer.close()

    stats = ingest(broker, topic, store)
    assert stats.messages == 185 and stats.batches >= 4  # bounded batches of 50
    assert (stats.stored, stats.duplicates, stats.dead_letters) == (120, 60, 3)
    assert stats.dead_by_reason == {"malformed_json": 1, "unknown_type": 1, "negative_value": 1}
    daily = store.variant_daily()
    assert daily.loc[daily["variant_id"] == "v1", "clicks"].item() == 12  # the restated value, not 22
    assert sum(store.offsets(topic).values()) == 185

    again = ingest(broker, topic, store)  # resumes from the stored offsets: nothing new
    assert again.messages == 0
    assert store.counts() == {"events": 120, "metric_snapshots": 1, "dead_letters": 3}


def test_an_older_restatement_never_overwrites_a_newer_one(broker, topic, tmp_path):
    store = EventStore(tmp_path / "events.duckdb")
    producer = EventProducer(broker.bootstrap_servers, topic)
    producer.send([snapshot(2, "impressions", 900, as_of=NOW + timedelta(days=1))])
    producer.send([snapshot(2, "impressions", 500, as_of=NOW)])
    producer.close()
    ingest(broker, topic, store)
    assert store.variant_daily()["impressions"].item() == 900


def test_parse_event_gives_a_reason_and_the_field():
    with pytest.raises(BadEvent) as err:
        parse_event(b'{"schema": "autoplay.event.v1", "type": "click", "variant_id": "v", "channel": "c"}')
    assert err.value.reason == "missing_field" and "event_id" in str(err.value)


def test_poison_never_halts_ingestion_and_each_dead_letter_says_why(broker, topic, tmp_path):
    """Tombstones, out-of-range integers and floats, deep nesting, oversized and non-UTF-8 messages, and
    figures that cannot be true: each becomes a dead letter with its reason; the rest of the batch is stored."""
    store = EventStore(tmp_path / "events.duckdb")
    producer = EventProducer(broker.bootstrap_servers, topic, max_request_size=4 << 20)  # a hostile producer
    good = click(1).model_dump_json(by_alias=True)
    poison = {
        "tombstone": None,
        "huge_count": good.replace('"count":1', '"count":18446744073709551616').encode(),
        "inf_value": good.replace('"value":0.0', '"value":1e999').encode(),
        "deep": b"[" * 5000 + b"]" * 5000,
        "oversized": b'{"x": "' + b"y" * (3 << 19) + b'"}',  # 1.5 MB
        "not_utf8": b"\xff\xfe\x00garbage",
        "before_2000": snapshot(3, "impressions", 10, day=date(1600, 1, 1)).model_dump_json(by_alias=True).encode(),
    }
    producer.send([click(0)])
    for value in poison.values():
        producer.send_raw(b"v1", value)
    producer.send([click(2), snapshot(4, "impressions", 100), snapshot(4, "clicks", 250)])  # clicks > impressions
    producer.close()
    stats = ingest(broker, topic, store)
    assert stats.stored == 2 and stats.dead_letters == len(poison) + 1
    assert stats.dead_by_reason == {"tombstone": 1, "out_of_range": 3, "too_deep": 1, "oversized": 1,
                                    "malformed_json": 1, "impossible_value": 1}  # fmt: skip
    assert ingest(broker, topic, store).messages == 0  # a rerun does not stumble on the same messages
    daily = store.variant_daily()
    assert (daily["clicks"].fillna(0) <= daily["impressions"].fillna(0)).all()
    with store.connect() as con:
        (detail,) = con.execute("select detail from dead_letters where reason = 'impossible_value'").fetchone()
    assert "clicks 250 > impressions 100" in detail
