"""Kafka IO for events with kafka-python: a producer, and a consumer that ingests into the event store.

The consumer assigns partitions itself and resumes from the offsets stored with the data (no consumer
group, no commits to Kafka): the store is the single source of truth for what has been read. Several
ingestors split a topic's partitions with ``member``/``members``.
"""

from __future__ import annotations

import hashlib
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


def fingerprint(message) -> str:
    """What identifies a message in its log besides its offset: to tell a reset log from the one we read."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(message.key or b"")
    digest.update(b"\x00")
    digest.update(message.value or b"")
    digest.update(str(message.timestamp).encode())
    return digest.hexdigest()


#: The dead-letter topic gets at most this much of a message; the whole bytes stay in the table.
DEAD_LETTER_MAX_BYTES = 256 << 10


def impossible_snapshots(snapshots: list, store: EventStore) -> tuple[list, list]:
    """Split off snapshots that cannot be true for their ad and day: more clicks than impressions, more
    purchases than clicks. Figures in the same batch are compared first, then those already stored."""
    figures: dict[tuple, dict[str, float]] = {}
    for s in snapshots:
        figures.setdefault((s.channel, s.external_id, s.day), {})[s.metric] = s.value
    stored = store.snapshot_figures(
        [k for k, f in figures.items() if not {"impressions", "clicks", "purchases"} <= set(f)]
    )
    bad, kept = [], []
    for s in snapshots:
        key = (s.channel, s.external_id, s.day)
        known = {**stored.get(key, {}), **figures[key]}
        limit = {"clicks": "impressions", "purchases": "clicks"}.get(s.metric)
        if limit and limit in known and s.value > known[limit]:
            bad.append((s, f"{s.metric} {s.value:g} > {limit} {known[limit]:g} for ad {s.external_id} on {s.day}"))
        else:
            kept.append(s)
    return kept, bad


class ProduceError(RuntimeError):
    """Kafka did not acknowledge every event within the producer's bound; nothing may be reported as stored."""


class EventProducer:
    """Sends events and returns only once every one is acknowledged by all in-sync replicas (``acks=all``),
    within ``timeout_s``: kafka-python's ``flush`` does not raise for records that failed, so each send's
    future is checked. With the broker down a send fails after ``timeout_s``, not after minutes."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout_s: float = 10.0, **client_config) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        bound_ms = max(1000, int(timeout_s * 1000))
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=5,
            retries=2**31 - 1,
            request_timeout_ms=max(500, bound_ms // 2),
            delivery_timeout_ms=bound_ms,
            max_block_ms=bound_ms,  # a send waiting for metadata of a dead broker gives up too
            **client_config,
        )

    def send(self, events: Iterable[AdditiveEvent | MetricSnapshot]) -> int:
        deadline = time.monotonic() + self.timeout_s
        try:
            futures = [
                self._producer.send(self.topic, key=event.variant_id.encode(), value=encode(event)) for event in events
            ]
            self._producer.flush(timeout=max(0.0, deadline - time.monotonic()))
            for future in futures:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # KafkaTimeoutError, KafkaError, or a flush past the deadline
            raise ProduceError(f"Kafka did not acknowledge the events on {self.topic} within {self.timeout_s:g} s: "
                               f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        return len(futures)

    def send_raw(self, key: bytes | None, value: bytes, topic: str | None = None):
        """Send bytes as they are (dead letters, tests); returns the send's future, for callers that check it."""
        return self._producer.send(topic or self.topic, key=key, value=value)

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

    def _consumer(self, fetch_max_wait_ms: int = 500) -> KafkaConsumer:
        """``fetch_max_wait_ms``: how long the broker holds a fetch that finds nothing new. A run that reads up to
        the log ends learns an empty partition's end only from such an answer, so it asks for a short wait."""
        return KafkaConsumer(
            group_id=None,
            fetch_max_wait_ms=fetch_max_wait_ms,
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
        """Ingest up to the log ends seen when it started (``until_idle``; ``idle_s`` without data also ends it
        where a broker reports no end), until ``max_seconds`` pass, or until ``stop`` is set (continuous mode)."""
        stats = IngestStats()
        started = time.monotonic()
        consumer = self._consumer(fetch_max_wait_ms=50 if until_idle else 500)
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
        partitions = self._assign(consumer, stats)
        last_data = time.monotonic()
        ends: dict[TopicPartition, int] | None = None  # the log ends seen at the start: read up to them, no idling
        while not (stop and stop.is_set()):
            records = consumer.poll(timeout_ms=250, max_records=self.batch_size)
            self._check_reset(consumer, partitions, stats)
            messages = [m for tp in partitions for m in records.get(tp, [])]
            if messages:
                writer.put(len(messages), self._validate(messages, dead_producer))
                last_data = time.monotonic()
            if until_idle and ends is None and all(consumer.highwater(tp) is not None for tp in partitions):
                ends = {tp: consumer.highwater(tp) for tp in partitions}
            if until_idle and ends is not None and all(consumer.position(tp) >= ends[tp] for tp in partitions):
                break
            if not messages and until_idle and time.monotonic() - last_data > idle_s:
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
        consumer = self._consumer(fetch_max_wait_ms=50)
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

    def _assign(self, consumer: KafkaConsumer, stats: IngestStats | None = None) -> list[TopicPartition]:
        ids = consumer.partitions_for_topic(self.topic)
        if not ids:
            raise RuntimeError(f"topic {self.topic!r} does not exist on the broker")
        partitions = [TopicPartition(self.topic, p) for p in sorted(ids) if p % self.members == self.member]
        consumer.assign(partitions)
        stored = self.store.offsets(self.topic)
        reset = self._changed_logs(consumer, partitions, stored, self.store.fingerprints(self.topic))
        for tp in partitions:
            if tp.partition in stored and tp.partition not in reset:
                consumer.seek(tp, stored[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        for p in sorted(reset):
            log.warning("%s partition %s: the message before stored offset %s is not the one we stored; the log "
                        "was reset or truncated. Reading the new log from its start (what is already stored is "
                        "dropped by id).", self.topic, p, stored[p])  # fmt: skip
            self.store.record_reset(self.topic, p, stored[p])
            if stats is not None:
                stats.log_resets.append(p)
        return partitions

    def _changed_logs(self, consumer, partitions, stored: dict[int, int], fingerprints: dict[int, str]) -> set[int]:
        """Partitions whose message at (stored offset - 1) is gone or is another message than the one stored
        last: the broker's log was reset (an embedded broker restarted empty) or truncated, even when the new
        log has grown past the stored offset (which comparing offsets alone cannot see)."""
        check = {tp: stored[tp.partition] - 1 for tp in partitions
                 if stored.get(tp.partition, 0) > 0 and tp.partition in fingerprints}  # fmt: skip
        if not check:
            return set()
        for tp, offset in check.items():
            consumer.seek(tp, offset)
        seen: dict[TopicPartition, str | None] = {}
        deadline = time.monotonic() + 5
        while len(seen) < len(check) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200, max_records=len(check) * 50).items():
                if tp in check and tp not in seen:
                    first = records[0]
                    seen[tp] = fingerprint(first) if first.offset == check[tp] else None
            for tp in check:  # a log that ends before the stored offset returns nothing: it was reset
                hw = consumer.highwater(tp)
                if tp not in seen and hw is not None and hw <= check[tp]:
                    seen[tp] = None
        return {tp.partition for tp in check if seen.get(tp) != fingerprints[tp.partition]}

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
                self.store.record_reset(self.topic, tp.partition, consumer.position(tp))
                consumer.seek_to_beginning(tp)

    def _validate(self, messages, dead_producer) -> tuple:
        """Parse and check a batch; returns what ``EventStore.write_batch`` takes."""
        events, snapshots, dead, next_offsets = [], [], [], {}
        now = datetime.now(UTC)
        self._refreshed = False
        for m in messages:
            next_offsets[m.partition] = (m.offset + 1, fingerprint(m))
            try:
                event = parse_event(m.value)
                check_time(event, now)
                self._check_variant(event)
            except BadEvent as bad:
                dead.append(self._dead_letter(m, bad, dead_producer))
                continue
            (snapshots if is_snapshot(event) else events).append(event)
        snapshots, impossible = impossible_snapshots(snapshots, self.store)
        for event, reason in impossible:
            dead.append({"topic": self.topic, "partition": None, "offset": None, "reason": "impossible_value",
                         "detail": reason, "raw": encode(event)})  # fmt: skip
        return events, snapshots, dead, next_offsets

    def _dead_letter(self, m, bad: BadEvent, dead_producer) -> dict:
        """The table row for a bad message; the dead-letter topic gets it too, keyed by where it came from
        (a redelivery after a crash carries the same key), truncated with a pointer when too big."""
        if dead_producer:
            value = m.value or b""
            if len(value) > DEAD_LETTER_MAX_BYTES:
                value = value[:DEAD_LETTER_MAX_BYTES]
            headers = [("reason", bad.reason.encode()), ("source", f"{m.topic}/{m.partition}/{m.offset}".encode()),
                       ("truncated", b"1" if len(m.value or b"") > DEAD_LETTER_MAX_BYTES else b"0")]  # fmt: skip
            try:
                dead_producer.send(self.dead_letter_topic, key=f"{m.topic}/{m.partition}/{m.offset}".encode(),
                                   value=value, headers=headers)  # fmt: skip
            except Exception as exc:  # the table has it; a dead-letter topic that refuses never stops ingestion
                log.warning("dead letter %s/%s/%s not sent to %s: %s", m.topic, m.partition, m.offset,
                            self.dead_letter_topic, exc)  # fmt: skip
        return {"topic": m.topic, "partition": m.partition, "offset": m.offset, "reason": bad.reason,
                "detail": str(bad)[:500], "raw": m.value}  # fmt: skip

    def _check_variant(self, event: AdditiveEvent | MetricSnapshot) -> None:
        if self._variants is None or event.variant_id in self._variants:
            return
        if not self._refreshed:  # it may have been planned since we looked; ask the store once per batch
            self._variants = self.known_variants() or set()
            self._refreshed = True
        if event.variant_id not in self._variants:
            raise BadEvent("unknown_variant", f"variant_id {event.variant_id!r} was never planned")
