"""Ingestion benchmark: events per second from Kafka into the event store, against the raw read rate.

Produces N small JSON events to the embedded broker, then in the same process measures
  raw_events_per_s:   the ingestor's consumer configuration reading every message and doing nothing else,
  store_events_per_s: the ingestor (validation, dedup, DuckDB transaction with offsets) end to end,
  produce_to_visible_s: one event produced while a continuous ingestor runs, until a query sees it.
Prints one JSON line per figure (see DESIGN.md). Usage: python bench/ingest.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from figures import figure
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.event_store import EventStore
from connectors.kafka_broker import EmbeddedBroker, ensure_topics
from connectors.kafka_events import EventIngestor
from connectors.ledger import Ledger

VARIANTS = [f"v{i:03d}" for i in range(50)]


def event(i: int, now: str) -> bytes:
    return (
        f'{{"schema":"autoplay.event.v1","type":"click","event_id":"e{i}","variant_id":"{VARIANTS[i % 50]}",'
        f'"channel":"shopify","external_id":"m{i % 50}","occurred_at":"{now}"}}'
    ).encode()


def produce(bootstrap: str, topic: str, n: int) -> float:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1)
    now = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    for i in range(n):
        producer.send(topic, key=VARIANTS[i % 50].encode(), value=event(i, now))
    producer.flush()
    producer.close()
    return n / (time.perf_counter() - started)


def raw_rate(bootstrap: str, topic: str, n: int, batch_size: int) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch_size,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen, started = 0, time.perf_counter()
    while seen < n:
        for records in consumer.poll(timeout_ms=500, max_records=batch_size).values():
            seen += len(records)
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed


def store_rate(bootstrap: str, topic: str, store: EventStore, n: int, batch_size: int) -> tuple[float, dict]:
    ingestor = EventIngestor(bootstrap, topic, store, batch_size=batch_size)
    writes = {"s": 0.0}
    original = store.write_batch

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            writes["s"] += time.perf_counter() - t

    store.write_batch = timed
    done = {}
    started = time.perf_counter()

    def on_batch(stats) -> None:
        if stats.messages >= n and "t" not in done:
            done["t"] = time.perf_counter()

    stats = ingestor.run(until_idle=True, idle_s=2.0, on_batch=on_batch)
    elapsed = done.get("t", time.perf_counter()) - started
    return stats.stored / elapsed, {"elapsed_s": elapsed, "duckdb_write_s": writes["s"], "batches": stats.batches}


def produce_to_visible(bootstrap: str, topic: str, store: EventStore, samples: int = 10) -> list[float]:
    stop = threading.Event()
    ingestor = EventIngestor(bootstrap, topic, store, batch_size=5000)
    thread = threading.Thread(target=ingestor.run, kwargs={"until_idle": False, "stop": stop}, daemon=True)
    thread.start()
    time.sleep(3.0)  # let it catch up with what is already on the topic
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    latencies = []
    for k in range(samples):
        event_id = f"latency-{k}"
        raw = event(0, datetime.now(UTC).isoformat()).replace(b'"e0"', f'"{event_id}"'.encode())
        started = time.perf_counter()
        producer.send(topic, key=b"v000", value=raw)
        producer.flush()
        while True:
            with store.connect() as con:
                if con.execute("select count(*) from events where event_id = ?", [event_id]).fetchone()[0]:
                    break
            time.sleep(0.02)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.3)
    producer.close()
    stop.set()
    thread.join(timeout=10)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "kafka.log") as broker:
        ensure_topics(broker.bootstrap_servers, {"bench": 4})
        rate = produce(broker.bootstrap_servers, "bench", args.events)
        figure("produce_events_per_s", rate, "events/s", f"kafka-python producer, {args.events:,} events, 4 partitions")
        raw = raw_rate(broker.bootstrap_servers, "bench", args.events, args.batch_size)
        figure("raw_events_per_s", raw, "events/s", "the ingestor's consumer settings, reading only")
        store = EventStore(Path(tmp) / "events.duckdb")
        planned = pd.DataFrame(
            {"variant_id": VARIANTS, "template": "studio", "colour": "#FFFFFF", "aspect": "1:1", "profile": "thumbnail"}
        )
        Ledger(store).start_generation("bench", 0, planned, [])
        stored, detail = store_rate(broker.bootstrap_servers, "bench", store, args.events, args.batch_size)
        figure(
            "store_events_per_s",
            stored,
            "events/s",
            f"validated, deduplicated, written with offsets in one DuckDB transaction per batch of "
            f"{args.batch_size:,}; DuckDB writes took {detail['duckdb_write_s']:.1f} of "
            f"{detail['elapsed_s']:.1f} s; ratio to raw {stored / raw:.2f}",
        )
        latencies = produce_to_visible(broker.bootstrap_servers, "bench", store)
        figure(
            "produce_to_visible_s",
            statistics.median(latencies),
            "s",
            f"median of {len(latencies)} single events, continuous ingestor; max {max(latencies):.2f} s",
        )


if __name__ == "__main__":
    main()
