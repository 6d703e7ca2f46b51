"""Kafka IO for events with kafka-python: a producer, and a consumer that ingests into the event store.

The consumer assigns partitions itself and resumes from the offsets stored with the data (no consumer
group, no commits to Kafka): the store is the single source of truth for what has been read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.event_store import BatchResult, EventStore
from connectors.events import AdditiveEvent, BadEvent, MetricSnapshot, encode, parse_event


class EventProducer:
    def __init__(self, bootstrap_servers: str, topic: str, **client_config) -> None:
        self.topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5, retries=5, **client_config
        )

    def send(self, events: Iterable[AdditiveEvent | MetricSnapshot]) -> int:
        n = 0
        for event in events:
            self._producer.send(self.topic, key=event.variant_id.encode(), value=encode(event))
            n += 1
        self._producer.flush()
        return n

    def send_raw(self, key: bytes | None, value: bytes, topic: str | None = None) -> None:
        self._producer.send(topic or self.topic, key=key, value=value)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()


@dataclass
class IngestStats(BatchResult):
    """Totals of an ingestion run: the batch counters summed, plus batches, messages and time."""

    batches: int = 0
    messages: int = 0
    seconds: float = 0.0

    def add(self, messages: int, result: BatchResult) -> None:
        self.batches += 1
        self.messages += messages
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.snapshots += result.snapshots
        self.dead_letters += result.dead_letters
        for reason, n in result.dead_by_reason.items():
            self.dead_by_reason[reason] = self.dead_by_reason.get(reason, 0) + n


class EventIngestor:
    """Reads the events topic in bounded batches into the store; bad events go to the dead-letter topic."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        store: EventStore,
        dead_letter_topic: str | None = None,
        batch_size: int = 5000,
        **client_config,
    ) -> None:
        self.topic = topic
        self.store = store
        self.batch_size = batch_size
        self.dead_letter_topic = dead_letter_topic
        self._config = dict(bootstrap_servers=bootstrap_servers, **client_config)

    def run(
        self,
        until_idle: bool = True,
        idle_s: float = 1.5,
        max_seconds: float | None = None,
        on_batch: Callable[[IngestStats], None] | None = None,
    ) -> IngestStats:
        stats = IngestStats()
        started = time.monotonic()
        consumer = KafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            fetch_max_bytes=64 << 20,
            max_partition_fetch_bytes=16 << 20,
            **self._config,
        )
        dead_producer = (
            KafkaProducer(bootstrap_servers=self._config["bootstrap_servers"]) if self.dead_letter_topic else None
        )
        try:
            partitions = self._assign(consumer)
            last_data = time.monotonic()
            while True:
                records = consumer.poll(timeout_ms=300, max_records=self.batch_size)
                messages = [m for tp in partitions for m in records.get(tp, [])]
                if messages:
                    stats.add(len(messages), self._store(messages, dead_producer))
                    last_data = time.monotonic()
                    if on_batch:
                        on_batch(stats)
                elif until_idle and time.monotonic() - last_data > idle_s:
                    break
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
        finally:
            consumer.close()
            if dead_producer:
                dead_producer.flush()
                dead_producer.close()
        stats.seconds = time.monotonic() - started
        return stats

    def _assign(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        ids = consumer.partitions_for_topic(self.topic)
        if not ids:
            raise RuntimeError(f"topic {self.topic!r} does not exist on the broker")
        partitions = [TopicPartition(self.topic, p) for p in sorted(ids)]
        consumer.assign(partitions)
        stored = self.store.offsets(self.topic)
        for tp in partitions:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        return partitions

    def _store(self, messages, dead_producer) -> BatchResult:
        events, snapshots, dead, next_offsets = [], [], [], {}
        for m in messages:
            next_offsets[m.partition] = m.offset + 1
            try:
                event = parse_event(m.value)
            except BadEvent as bad:
                dead.append(
                    {
                        "topic": m.topic,
                        "partition": m.partition,
                        "offset": m.offset,
                        "reason": bad.reason,
                        "detail": str(bad),
                        "raw": m.value,
                    }
                )
                if dead_producer:
                    dead_producer.send(
                        self.dead_letter_topic, key=m.key, value=m.value, headers=[("reason", bad.reason.encode())]
                    )
                continue
            (snapshots if isinstance(event, MetricSnapshot) else events).append(event)
        return self.store.write_batch(self.topic, events, snapshots, dead, next_offsets)
