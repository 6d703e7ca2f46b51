"""Fault benchmark: what is produced, acknowledged, stored, dead-lettered and duplicated under attack and
outage, through the real broker, the ASGI ingest endpoint and the Meta sandbox. Counts, not timings.

  poison_stored / poison_dead_letters:  a batch of good events with every kind of poison between them.
  outage_acknowledged / outage_refused_503 / outage_answer_s:  webhooks posted while the broker is down.
  forged_pixel_purchases_stored_as_orders:  forged pixel checkouts sharing signed orders' checkout tokens.
  signed_orders_stored:  the signed orders beside them (all must be stored).
  concurrent_publish_ads / _adsets / _creatives:  4 threads publishing the same 2 variants at once.
  reset_events_skipped:  events of a broker restarted empty whose new log grew past the stored offset.
Prints one JSON line per figure. Usage: python bench/faults.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from figures import figure
from PIL import Image

from connectors.event_store import EventStore
from connectors.events import AdditiveEvent, MetricSnapshot
from connectors.ingest_server import IngestConfig, IngestServer
from connectors.kafka_broker import EmbeddedBroker, ensure_topics
from connectors.kafka_events import EventIngestor, EventProducer
from connectors.ledger import Ledger
from connectors.meta import CreativeToPublish, MetaAds
from connectors.sandbox.meta_graph import MetaGraphSandbox
from experiments.market import SimulatedMarket

SECRET = "bench-app-secret-0123456789"
ORIGIN = "https://bench.myshopify.com"


def click(i: int) -> AdditiveEvent:
    return AdditiveEvent(type="click", event_id=f"c{i}", variant_id="v1", channel="meta",
                         occurred_at=datetime.now(UTC))  # fmt: skip


def post(url: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def signed(body: bytes) -> dict:
    digest = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
    }


def order(i: int) -> bytes:
    return json.dumps({"id": i, "checkout_token": f"tok{i}", "created_at": datetime.now(UTC).isoformat(),
                       "currency": "USD", "total_price": "99.00",
                       "landing_site": f"/p?utm_content=v1&ad_id=1{i}"}).encode()  # fmt: skip


def send_order(url: str, i: int) -> int:
    body = order(i)
    return post(f"{url}/webhooks/shopify", body, signed(body))


def poison(broker: EmbeddedBroker, tmp: Path) -> None:
    ensure_topics(broker.bootstrap_servers, {"poison": 2, "poison.dead": 1})
    producer = EventProducer(broker.bootstrap_servers, "poison", max_request_size=4 << 20)
    good = click(0).model_dump_json(by_alias=True)
    bad = [None, good.replace('"count":1', '"count":18446744073709551616').encode(),
           good.replace('"value":0.0', '"value":1e999').encode(), b"[" * 5000 + b"]" * 5000,
           b'{"x": "' + b"y" * (3 << 19) + b'"}', b"\xff\xfe", b"{broken"]  # fmt: skip
    for i in range(1000):
        producer.send([click(i)])
        if i % 100 == 0:
            for raw in bad:
                producer.send_raw(b"v1", raw)
    snap = dict(type="metric_snapshot", variant_id="v1", channel="meta", external_id="9", day=date(2026, 11, 1),
                as_of=datetime.now(UTC))  # fmt: skip
    producer.send(
        [MetricSnapshot(metric="impressions", value=10, **snap), MetricSnapshot(metric="clicks", value=50, **snap)]
    )
    producer.close()
    store = EventStore(tmp / "poison.duckdb")
    stats = EventIngestor(broker.bootstrap_servers, "poison", store, "poison.dead").run()
    figure("poison_stored", stats.stored, "events", "1000 good clicks with 70 poison messages and 1 impossible figure")
    figure("poison_dead_letters", stats.dead_letters, "messages", json.dumps(stats.dead_by_reason))


def outage_and_forgery(tmp: Path) -> None:
    with EmbeddedBroker(log_path=tmp / "outage.log") as broker:
        ensure_topics(broker.bootstrap_servers, {"shop": 1})
        producer = EventProducer(broker.bootstrap_servers, "shop", timeout_s=3.0)
        server = IngestServer(producer, IngestConfig(SECRET, frozenset({ORIGIN}))).start()
        for i in range(20):  # forged pixel checkouts first, with the checkout tokens of the real orders
            claim = [{"id": f"f{i}", "name": "checkout_completed", "timestamp": datetime.now(UTC).isoformat(),
                      "variant_id": "v1", "checkout_token": f"tok{i}", "value": 1.0, "currency": "USD",
                      "client_id": f"attacker-{i}"}]  # fmt: skip
            post(f"{server.url}/pixel", json.dumps(claim).encode(), {"Origin": ORIGIN})
        acked = sum(send_order(server.url, i) == 200 for i in range(20))
        store = EventStore(tmp / "shop.duckdb")
        EventIngestor(broker.bootstrap_servers, "shop", store).run()
        with store.connect() as con:
            rows = dict(
                con.execute("select channel, count(*) from events where type = 'purchase' group by 1").fetchall()
            )
    figure("signed_orders_stored", rows.get("shopify", 0), "orders", f"{acked} of 20 signed orders acknowledged")
    figure("forged_pixel_purchases_stored_as_orders", 0 if rows.get("shopify", 0) == acked else 1, "orders",
           f"{rows.get('pixel', 0)} forged checkouts stored apart on channel pixel")  # fmt: skip
    started = time.monotonic()
    statuses = [send_order(server.url, 100 + i) for i in range(3)]
    took = (time.monotonic() - started) / 3
    server.stop()
    figure("outage_acknowledged", statuses.count(200), "webhooks", "3 webhooks posted with the broker down")
    figure("outage_refused_503", statuses.count(503), "webhooks", "answered 503 with Retry-After")
    figure("outage_answer_s", took, "s", "per webhook, produce bound 3 s")


def concurrent_publish(tmp: Path) -> None:
    with MetaGraphSandbox(SimulatedMarket(), "bench-token-0123456789", "act_1", campaign_id="120000000000001") as sb:
        sb.latency_s = 0.1
        image = tmp / "still.jpg"
        Image.new("RGB", (64, 64), "#1F6FEB").save(image)
        ledger = Ledger(EventStore(tmp / "ledger.duckdb"))

        def publish(worker: int) -> None:
            meta = MetaAds("bench-token-0123456789", "act_1", "7", "120000000000001", graph_url=sb.url)
            for vid in ("va", "vb"):
                with ledger.lease("bench", vid, "meta", f"worker-{worker}"):
                    meta.publish(CreativeToPublish(vid, "bench", image, "https://x.example", "m"), 500)

        threads = [threading.Thread(target=publish, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        kinds = [o["type"] for o in sb.objects.values()]
    for kind in ("ad", "adset", "creative"):
        figure(f"concurrent_publish_{kind}s", kinds.count(kind), "objects", "4 publishers, 2 variants: 2 expected")


def reset(tmp: Path) -> None:
    store = EventStore(tmp / "reset.duckdb")
    with EmbeddedBroker(log_path=tmp / "r1.log") as first:
        port = first.port
        ensure_topics(first.bootstrap_servers, {"r": 1})
        p = EventProducer(first.bootstrap_servers, "r")
        p.send([click(i) for i in range(100)])
        p.close()
        EventIngestor(first.bootstrap_servers, "r", store).run()
    with EmbeddedBroker(port=port, log_path=tmp / "r2.log") as second:
        ensure_topics(second.bootstrap_servers, {"r": 1})
        p = EventProducer(second.bootstrap_servers, "r")
        p.send([click(i) for i in range(100, 250)])
        p.close()
        stats = EventIngestor(second.bootstrap_servers, "r", store).run()
    figure("reset_events_skipped", 150 - stats.stored, "events", f"resets noticed on partitions {stats.log_resets}")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    with EmbeddedBroker(log_path=tmp / "kafka.log") as broker:
        poison(broker, tmp)
    outage_and_forgery(tmp)
    concurrent_publish(tmp)
    reset(tmp)


if __name__ == "__main__":
    main()
