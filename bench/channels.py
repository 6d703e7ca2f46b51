"""Channel benchmark: what publishing and the ingest endpoint cost, through the SDKs over local HTTP.

  meta_publish_s:            one still variant published (image lookup+upload, creative, ad set, ad) by the
                             facebook-business SDK against the sandbox; the SDK and HTTP overhead, not Meta's.
  meta_republish_s:          the same variant again (every object found by name: the idempotent path).
  shopify_attach_s:          one render attached (staged upload, productUpdate, media polled until READY).
  pixel_events_per_s:        storefront pixel events in batches of 500 through the endpoint into Kafka (acked).
  webhooks_per_s:            HMAC-signed order webhooks, one at a time, verified and produced to Kafka.
Prints one JSON line per figure. Usage: python bench/channels.py [--variants 20] [--webhooks 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from figures import figure
from PIL import Image

from connectors.ingest_server import IngestConfig, IngestServer
from connectors.kafka_broker import EmbeddedBroker, ensure_topics
from connectors.kafka_events import EventProducer
from connectors.meta import CreativeToPublish, MetaAds
from connectors.retry import Backoff
from connectors.sandbox.meta_graph import MetaGraphSandbox
from connectors.sandbox.shopify_admin import ShopifySandbox
from connectors.shopify import RenderToAttach, ShopifyAdmin
from experiments.market import SimulatedMarket


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", type=int, default=20)
    parser.add_argument("--webhooks", type=int, default=300)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    images = []
    for i in range(args.variants):
        path = tmp / f"v{i}.jpg"
        Image.new("RGB", (1080, 1080), (i * 10 % 255, 80, 160)).save(path, quality=90)
        images.append(path)

    with MetaGraphSandbox(SimulatedMarket(), "bench-token-123456", "act_1") as sandbox:
        meta = MetaAds("bench-token-123456", "act_1", "7", sandbox.campaign_id, graph_url=sandbox.url)
        creatives = [CreativeToPublish(f"v{i}", "bench", p, "https://x.example", "m") for i, p in enumerate(images)]
        first = [_timed(lambda c=c: meta.publish(c, 1000)) for c in creatives]
        again = [_timed(lambda c=c: meta.publish(c, 1000)) for c in creatives]
    figure("meta_publish_s", statistics.median(first), "s", f"median of {len(first)} 1080x1080 JPEG variants, sandbox")
    figure("meta_republish_s", statistics.median(again), "s", "the same variants again: every object found by name")

    with ShopifySandbox("shpat_bench_123456", "bench-secret-123456") as shop:
        admin = ShopifyAdmin("bench.myshopify.com", "shpat_bench_123456", shop.url, backoff=Backoff(), poll_s=0.05)
        product = "gid://shopify/Product/8000000000001"
        attach = [_timed(lambda i=i, p=p: admin.attach(product, RenderToAttach(f"v{i}", p, "alt"))) for i, p in
                  enumerate(images)]  # fmt: skip
    figure("shopify_attach_s", statistics.median(attach), "s", "staged upload, productUpdate, poll until READY")

    with EmbeddedBroker(log_path=tmp / "tansu.log") as broker:
        ensure_topics(broker.bootstrap_servers, {"bench": 4})
        producer = EventProducer(broker.bootstrap_servers, "bench")
        origin = "https://bench.myshopify.com"
        with IngestServer(producer, IngestConfig("bench-secret-123456", frozenset({origin}))) as endpoint:
            shop = ShopifySandbox("x" * 10, "bench-secret-123456", webhook_url=f"{endpoint.url}/webhooks/shopify",
                                  pixel_url=f"{endpoint.url}/pixel")  # fmt: skip
            shop.origin = origin
            day = datetime(2026, 11, 20, tzinfo=UTC).date().isoformat()
            ads = [{"ad_id": str(i), "url_tags": f"utm_content=v{i}&ad_id={{{{ad.id}}}}", "clicks": 1000,
                    "add_to_cart": 250, "purchases": 0, "purchase_value": 0.0} for i in range(8)]  # fmt: skip
            started = time.perf_counter()
            shop.storefront_day(day, ads)
            pixel_s = time.perf_counter() - started
            order = {"id": 1, "created_at": "2026-11-20T12:00:00+00:00", "currency": "USD", "total_price": "40.00",
                     "landing_site": "/p?utm_content=v1&ad_id=1"}  # fmt: skip
            started = time.perf_counter()
            for i in range(args.webhooks):
                shop.send_webhook("orders/create", {**order, "id": i, "checkout_token": f"c{i}"})
            webhook_s = time.perf_counter() - started
        producer.close()
    figure("pixel_events_per_s", shop.sent["pixel_events"] / pixel_s, "events/s",
           f"{shop.sent['pixel_events']} events in batches of 500, acked by Kafka before each answer")  # fmt: skip
    figure("webhooks_per_s", args.webhooks / webhook_s, "webhooks/s",
           "one HTTP request each: HMAC check, dedup, produce and flush to Kafka")  # fmt: skip


def _timed(fn) -> float:  # noqa: ANN001
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
