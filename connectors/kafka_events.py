"""Kafka IO for events with kafka-python: a producer, and a consumer that ingests into the event store.

The consumer assigns partitions itself and resumes from the offsets stored with the data (no consumer
group, no commits to Kafka): the store is the single source of truth for what has been read. Several
ingestors split a topic's partitions with ``member``/``members``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.event_store import BatchResult, EventStore
from connectors.events import AdditiveEvent, BadEvent, MetricSnapshot, check_time, encode, is_snapshot, parse_event

log = logging.getLogger(__name__)


class EventProducer:
    def __init__(self, bootstrap_servers: str, topic: str, **client_config) -> None:
        self.topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=5,
            retries=2**31 - 1,
            delivery_timeout_ms=180_000,
            **client_config,
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

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()


@dataclass
class IngestStats(BatchResult):
    """Totals of an ingestion run: the batch counters summed, plus batches, messages, time and resets."""

    batches: int = 0
    messages: int = 0
    seconds: float = 0.0
    log_resets: list[int] = field(default_factory=list)
    lag: dict[int, int] = field(default_factory=dict)

    def add(self, messages: int, result: BatchResult) -> None:
        self.batches += 1
        self.messages += messages
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.snapshots += result.snapshots
        self.dead_letters += result.dead_letters
        for reason, n in result.dead_by_reason.items():
            self.dead_by_reason[reason] = self.dead_by_reason.get(reason, 0) + n


class _BatchWriter:
    """Commits validated batches in a thread of its own, in order, while the next batch is decoded.

    DuckDB releases the GIL while it writes, so on two cores decoding and committing overlap. Each batch
    still commits together with the offsets after it; at most two batches wait, which bounds memory.
    """

    def __init__(self, store: EventStore, topic: str, stats: IngestStats, on_batch) -> None:
        self.store, self.topic, self.stats, self.on_batch = store, topic, stats, on_batch
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="event-store-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self.store.held():
                self._serve()
        except BaseException as exc:  # surfaced in the consumer's thread by put/drain
            self._error = exc
            self._serve()  # keep acknowledging, so that nobody waits on a dead writer

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            messages, batch = item
            try:
                if self._error is None:
                    self.stats.add(messages, self.store.write_batch(self.topic, *batch))
                    if self.on_batch:
                        self.on_batch(self.stats)
            except BaseException as exc:
                self._error = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, messages: int, batch: tuple) -> None:
        self._raise()
        self._queue.put((messages, batch))

    def drain(self) -> None:
        self._queue.join()
        self._raise()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


class EventIngestor:
    """Reads the events topic in bounded batches into the store; bad events go to the dead-letter topic.

    ``known_variants`` returns the variant ids events may name (None: no check); by default the store's
    ledger is asked. ``member``/``members`` select every ``members``-th partition for scale-out.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        store: EventStore,
        dead_letter_topic: str | None = None,
        batch_size: int = 5000,
        member: int = 0,
        members: int = 1,
        known_variants: Callable[[], set[str] | None] | None = None,
        **client_config,
    ) -> None:
        if not 0 <= member < members:
            raise ValueError(f"member must lie in [0, {members}), got {member}")
        self.topic = topic
        self.store = store
        self.batch_size = batch_size
        self.dead_letter_topic = dead_letter_topic
        self.member, self.members = member, members
        self.known_variants = known_variants or store.known_variants
        self._config = dict(bootstrap_servers=bootstrap_servers, **client_config)
        self._variants: set[str] | None = None
        self._refreshed = False

    def _consumer(self) -> KafkaConsumer:
        return KafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            fetch_max_bytes=64 << 20,
            max_partition_fetch_bytes=16 << 20,
            reconnect_backoff_max_ms=2000,
            **self._config,
        )

    def run(
        self,
        until_idle: bool = True,
        idle_s: float = 1.5,
        max_seconds: float | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[IngestStats], None] | None = None,
    ) -> IngestStats:
        """Ingest until idle (``until_idle``), ``max_seconds`` pass, or ``stop`` is set (continuous mode)."""
        stats = IngestStats()
        started = time.monotonic()
        consumer = self._consumer()
        dead_producer = KafkaProducer(**self._config) if self.dead_letter_topic else None
        self._variants = self.known_variants()
        writer = _BatchWriter(self.store, self.topic, stats, on_batch)
        try:
            self._loop(consumer, dead_producer, writer, stats, until_idle, idle_s, max_seconds, stop, started)
        finally:
            writer.close()
            consumer.close()
            if dead_producer:
                dead_producer.flush()
                dead_producer.close()
        stats.seconds = time.monotonic() - started
        return stats

    def _loop(self, consumer, dead_producer, writer, stats, until_idle, idle_s, max_seconds, stop, started) -> None:
        partitions = self._assign(consumer)
        last_data = time.monotonic()
        while not (stop and stop.is_set()):
            records = consumer.poll(timeout_ms=250, max_records=self.batch_size)
            self._check_reset(consumer, partitions, stats)
            messages = [m for tp in partitions for m in records.get(tp, [])]
            if messages:
                writer.put(len(messages), self._validate(messages, dead_producer))
                last_data = time.monotonic()
            elif until_idle and time.monotonic() - last_data > idle_s:
                break
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                break
        writer.drain()
        stats.lag = {tp.partition: max(0, (consumer.highwater(tp) or 0) - consumer.position(tp)) for tp in partitions}

    def lag(self) -> dict[int, int]:
        """Messages waiting per partition: the broker's high watermark minus the stored offset.

        Uses the fetch high watermark, which the embedded broker reports correctly (its ListOffsets
        answer is the last batch's base offset, not the log end).
        """
        consumer = self._consumer()
        try:
            partitions = self._assign(consumer)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in partitions):
                consumer.poll(timeout_ms=200, max_records=1)
            stored = self.store.offsets(self.topic)
            return {
                tp.partition: max(0, (consumer.highwater(tp) or 0) - stored.get(tp.partition, 0)) for tp in partitions
            }
        finally:
            consumer.close()

    def _assign(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        ids = consumer.partitions_for_topic(self.topic)
        if not ids:
            raise RuntimeError(f"topic {self.topic!r} does not exist on the broker")
        partitions = [TopicPartition(self.topic, p) for p in sorted(ids) if p % self.members == self.member]
        consumer.assign(partitions)
        stored = self.store.offsets(self.topic)
        for tp in partitions:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        return partitions

    def _check_reset(self, consumer: KafkaConsumer, partitions: list[TopicPartition], stats: IngestStats) -> None:
        """A position past the broker's high watermark means the log was reset (an embedded broker restarted
        empty, or a topic was recreated): read the new log from its start instead of waiting forever."""
        for tp in partitions:
            highwater = consumer.highwater(tp)
            if highwater is not None and consumer.position(tp) > highwater:
                log.warning(
                    "%s partition %s: stored offset %s is past the broker's log end %s; the log was reset. "
                    "Reading the new log from its start (events already stored are dropped by id).",
                    self.topic,
                    tp.partition,
                    consumer.position(tp),
                    highwater,
                )
                stats.log_resets.append(tp.partition)
                consumer.seek_to_beginning(tp)

    def _validate(self, messages, dead_producer) -> tuple:
        """Parse and check a batch; returns what ``EventStore.write_batch`` takes."""
        events, snapshots, dead, next_offsets = [], [], [], {}
        now = datetime.now(UTC)
        self._refreshed = False
        for m in messages:
            next_offsets[m.partition] = m.offset + 1
            try:
                event = parse_event(m.value)
                check_time(event, now)
                self._check_variant(event)
            except BadEvent as bad:
                dead.append(
                    {
                        "topic": m.topic,
                        "partition": m.partition,
                        "offset": m.offset,
                        "reason": bad.reason,
                        "detail": str(bad)[:500],
                        "raw": m.value,
                    }
                )
                if dead_producer:
                    dead_producer.send(
                        self.dead_letter_topic, key=m.key, value=m.value, headers=[("reason", bad.reason.encode())]
                    )
                continue
            (snapshots if is_snapshot(event) else events).append(event)
        return events, snapshots, dead, next_offsets

    def _check_variant(self, event: AdditiveEvent | MetricSnapshot) -> None:
        if self._variants is None or event.variant_id in self._variants:
            return
        if not self._refreshed:  # it may have been planned since we looked; ask the store once per batch
            self._variants = self.known_variants() or set()
            self._refreshed = True
        if event.variant_id not in self._variants:
            raise BadEvent("unknown_variant", f"variant_id {event.variant_id!r} was never planned")
