"""The Dagster side of ingestion: the lag sensor and the dead-letter asset check, on the real broker."""

import json
import uuid
from datetime import UTC, datetime

from dagster import DagsterInstance, build_sensor_context, materialize

from connectors.kafka_broker import ensure_topics
from connectors.kafka_events import EventProducer
from pipelines.assets import event_store
from pipelines.definitions import ingest_sensor
from pipelines.resources import KafkaResource, LoopResource
from tests.conftest import EXAMPLE_BRIEF


def click(i: int) -> bytes:
    return json.dumps(
        {
            "schema": "autoplay.event.v1",
            "type": "click",
            "event_id": f"e{i}",
            "variant_id": "v1",
            "channel": "shopify",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    ).encode()


def setup(broker, tmp_path, messages: list[bytes]):
    topic = f"wiring-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap_servers, {topic: 2, f"{topic}.dead": 1})
    producer = EventProducer(broker.bootstrap_servers, topic)
    for raw in messages:
        producer.send_raw(b"v1", raw)
    producer.close()
    loop = LoopResource(briefs_dir=str(EXAMPLE_BRIEF.parent.parent), home=str(tmp_path))
    kafka = KafkaResource(bootstrap_servers=broker.bootstrap_servers, topic=topic, dead_letter_topic=f"{topic}.dead")
    return loop, kafka


def test_sensor_requests_ingestion_when_lag_passes_the_threshold(broker, tmp_path, monkeypatch):
    loop, kafka = setup(broker, tmp_path, [click(i) for i in range(40)])
    monkeypatch.setenv("AUTOPLAY_INGEST_LAG_THRESHOLD", "30")
    monkeypatch.setenv("AUTOPLAY_INGEST_INTERVAL_S", "100000")
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources={"loop": loop, "kafka": kafka}, cursor=None)
        result = ingest_sensor(context)
        assert len(result.run_requests) == 1 and "over threshold" in result.run_requests[0].tags["reason"]
        monkeypatch.setenv("AUTOPLAY_INGEST_LAG_THRESHOLD", "1000")
        quiet = ingest_sensor(
            build_sensor_context(instance=instance, resources={"loop": loop, "kafka": kafka}, cursor=result.cursor)
        )
        assert not quiet.run_requests and "lag 40" in quiet.skip_reason.skip_message


def test_asset_check_fails_when_dead_letters_pass_their_share(broker, tmp_path):
    loop, kafka = setup(broker, tmp_path, [click(i) for i in range(90)] + [b"{garbage"] * 10)
    result = materialize([event_store], resources={"loop": loop, "kafka": kafka})
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "dead_letter_share" and not check.passed
    assert check.metadata["share"].value == 0.1
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["stored"].value == 90 and metadata["lag_total"].value == 0
