"""The official ShopifyAPI SDK over real HTTP against the sandbox Admin GraphQL API, and the ingest
endpoint receiving the sandbox shop's webhooks and pixel events into the real Kafka broker."""

import base64
import http.client
import json
import logging
import urllib.request
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from connectors.event_store import EventStore
from connectors.ingest_server import IngestConfig, IngestServer
from connectors.kafka_broker import ensure_topics
from connectors.kafka_events import EventIngestor, EventProducer
from connectors.retry import Backoff
from connectors.sandbox.shopify_admin import ShopifySandbox
from connectors.shopify import ModelToAttach, RenderToAttach, ShopifyAdmin, ShopifyError
from connectors.storefront_ingest import verify_hmac
from tests.conftest import WATERBOTTLE

pytestmark = pytest.mark.slow  # the SDKs over real HTTP against the sandboxes: the integration lane

TOKEN = "shpat_sandbox_secret_7f3a9c"
APP_SECRET = "shopify-app-secret-0d9e1b"
PRODUCT = "gid://shopify/Product/8000000000001"


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def shop():
    with ShopifySandbox(TOKEN, APP_SECRET) as sb:
        yield sb


@pytest.fixture
def render(tmp_path):
    path = tmp_path / "still.jpg"
    Image.new("RGB", (64, 80), "#2E7D32").save(path)
    return RenderToAttach("v0a1b2c3d4e5f6a7", path, "Water bottle on a green studio backdrop")


def admin(shop, sleep=None, token=TOKEN, **kw):
    return ShopifyAdmin(
        "sandbox-shop.myshopify.com", token, admin_url=shop.url, backoff=Backoff(sleep=sleep or RecordingSleep()),
        poll_s=0.0, **kw,
    )  # fmt: skip


def test_a_render_is_staged_uploaded_attached_and_featured_once_ready(shop, render):
    media = admin(shop).attach(PRODUCT, render, featured=True)
    assert media.status == "READY" and media.featured
    stored = shop.products[PRODUCT]["media"]
    assert [m["id"] for m in stored] == [media.media_id]
    assert stored[0]["alt"] == f"{render.alt} [{render.variant_id}]"
    staged = next(iter(shop.staged.values()))
    assert staged["filename"] == f"autoplay-{render.variant_id}.jpg"
    assert staged["bytes"] == render.image_path.read_bytes()  # the file really went through the staged target
    assert f"autoplay-{render.variant_id}.jpg" in media.url


def test_attaching_again_reuses_the_media_and_featuring_moves_it_first(shop, render, tmp_path):
    client = admin(shop)
    first = client.attach(PRODUCT, render)
    other_path = tmp_path / "other.jpg"
    Image.new("RGB", (64, 80), "#111827").save(other_path)
    other = client.attach(PRODUCT, RenderToAttach("vffff0000aaaa111", other_path, "Black"), featured=True)
    again = client.attach(PRODUCT, render)
    assert again.media_id == first.media_id
    media = shop.products[PRODUCT]["media"]
    assert len(media) == 2 and media[0]["id"] == other.media_id  # Shopify features the first media
    assert len(shop.staged) == 2  # nothing uploaded a second time


def test_failed_processing_is_reported_with_shopifys_reason(shop, render):
    shop.inject("media_failed")
    with pytest.raises(ShopifyError, match=r"could not process the render of v0a1b2c3d4e5f6a7: UNSUPPORTED_IMAGE"):
        admin(shop).attach(PRODUCT, render)


@pytest.fixture
def model(tmp_path):
    usdz = tmp_path / "model.usdz"
    with zipfile.ZipFile(usdz, "w") as z:  # a USDZ is an uncompressed zip whose first file is the stage
        z.writestr("model.usdc", b"PXR-USDC" + bytes(64))
    return ModelToAttach("45f3de24443b6d6a", WATERBOTTLE, usdz, "Water bottle, 3D model")


def test_the_3d_model_is_shown_on_the_product_page_and_linked_for_ar_quick_look(shop, model, render):
    client = admin(shop)
    client.attach(PRODUCT, render, featured=True)
    attached = client.attach_model(PRODUCT, model)
    assert attached.status == "READY" and attached.media_id.startswith("gid://shopify/Model3d/")
    assert f"autoplay-{model.key}.glb" in attached.sources["glb"] and ".usdz" in attached.sources["usdz"]
    staged = {s["filename"]: s for s in shop.staged.values()}
    assert staged[f"autoplay-{model.key}.glb"]["bytes"] == WATERBOTTLE.read_bytes()
    assert staged[f"autoplay-{model.key}.usdz"]["resource"] == "FILE"
    assert shop.products[PRODUCT]["metafields"][("autoplay", "ar_quick_look")] == attached.file_id
    assert shop.files[attached.file_id]["fileStatus"] == "READY"
    # the product's featured image is still a render, not the model
    assert (
        client.execute("read", "query product($id: ID!) { product(id: $id) { id } }", {"id": PRODUCT})["product"][
            "featuredMedia"
        ]["id"]
        == shop.products[PRODUCT]["media"][0]["id"]
    )
    again = client.attach_model(PRODUCT, model)
    assert (again.media_id, again.file_id) == (attached.media_id, attached.file_id)
    assert len(shop.staged) == 3 and len(shop.files) == 1  # nothing sent twice


def test_a_3d_model_shopify_would_refuse_is_refused_before_anything_is_sent(shop, model, tmp_path):
    client = admin(shop)
    big = tmp_path / "big.glb"
    with open(big, "wb") as fh:
        fh.write(b"glTF\x02\x00\x00\x00")
        fh.truncate(501 * 10**6)  # sparse: no 501 MB written
    with pytest.raises(ShopifyError, match=r"big.glb: 501 MB is over Shopify's 500 MB limit"):
        client.attach_model(PRODUCT, ModelToAttach("k", big, model.usdz_path, "x"))
    fake = tmp_path / "fake.usdz"
    fake.write_bytes(b"#usda 1.0\n")
    with pytest.raises(ShopifyError, match=r"fake.usdz: not a USDZ file"):
        client.attach_model(PRODUCT, ModelToAttach("k", model.glb_path, fake, "x"))
    obj = tmp_path / "watch.obj"
    obj.write_text("v 0 0 0\n")
    with pytest.raises(ShopifyError, match=r"watch.obj: Shopify takes 3D models as .glb or .usdz, not '.obj'"):
        client.attach_model(PRODUCT, ModelToAttach("k", obj, model.usdz_path, "x"))
    assert shop.staged == {} and shop.products[PRODUCT]["media"] == []


def test_a_3d_model_shopify_cannot_process_fails_with_its_reason(shop, model):
    shop.inject("media_failed")
    with pytest.raises(ShopifyError, match=r"could not process the 3D model 45f3de24443b6d6a: MODEL3D_VALIDATION"):
        admin(shop).attach_model(PRODUCT, model)


def test_cost_throttle_waits_for_the_bucket_and_429_honours_retry_after(shop, render):
    sleep = RecordingSleep()
    shop.inject("throttled", times=1, match="stagedUploadsCreate")
    shop.inject("http_429", times=1, match="productUpdate")
    admin(shop, sleep).attach(PRODUCT, render)
    # THROTTLED: 10 points needed, 9 available, restored at 50/s -> 0.02 s; 429: Retry-After 1.0 s
    assert any(0.02 <= w < 0.2 for w in sleep.waits)
    assert any(w >= 1.0 for w in sleep.waits)
    assert len(shop.products[PRODUCT]["media"]) == 1


def test_5xx_and_timeouts_are_retried_and_errors_name_the_operation(shop, render):
    shop.slow_response_s = 1.5
    shop.inject("http_503", times=1, match="product")
    shop.inject("timeout", times=1, match="product")
    media = admin(shop, timeout=0.5).attach(PRODUCT, render)
    assert media.status == "READY" and len(shop.products[PRODUCT]["media"]) == 1
    with pytest.raises(ShopifyError, match=r"gid://shopify/Product/999 does not exist"):
        admin(shop).product_media("gid://shopify/Product/999")


def test_a_bad_token_is_refused_without_retry_and_never_appears(shop, render, caplog):
    caplog.set_level(logging.DEBUG)
    sleep = RecordingSleep()
    bad = "shpat_wrong_" + TOKEN
    client = admin(shop, sleep, token=bad)
    with pytest.raises(ShopifyError, match="HTTP 401") as err:
        client.attach(PRODUCT, render)
    assert sleep.waits == []
    assert bad not in str(err.value) and bad not in caplog.text and bad not in repr(client)


# -- the ingest endpoint -----------------------------------------------------------------------------
@pytest.fixture
def topic(broker):
    name = f"shop-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap_servers, {name: 2, f"{name}.dead": 1})
    return name


ORIGIN = "https://aqua-co.myshopify.com"


@pytest.fixture
def endpoint(broker, topic):
    producer = EventProducer(broker.bootstrap_servers, topic)
    with IngestServer(producer, IngestConfig(APP_SECRET, frozenset({ORIGIN}))) as ep:
        yield ep
    producer.close()


def post(url, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Origin": ORIGIN, **(headers or {})}
    request = urllib.request.Request(url, data, {k: v for k, v in headers.items() if v is not None})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def stored_events(broker, topic, tmp_path):
    store = EventStore(tmp_path / "events.duckdb")
    stats = EventIngestor(broker.bootstrap_servers, topic, store, f"{topic}.dead").run(idle_s=1.0)
    with store.connect() as con:
        rows = con.execute("select type, variant_id, external_id, value, currency from events order by type").fetchall()
    return stats, rows


ORDER = {
    "id": 5500000000042,
    "checkout_token": "c0ffee",
    "created_at": "2026-11-20T18:03:11+00:00",
    "currency": "USD",
    "total_price": "42.50",
    "landing_site": "/products/water-bottle?utm_source=meta&utm_content=v0a1b2c3d4e5f6a7&ad_id=120000000000102",
}


def test_webhooks_are_verified_deduplicated_and_joined_to_the_ad(endpoint, broker, topic, tmp_path):
    shop = ShopifySandbox(TOKEN, APP_SECRET, webhook_url=f"{endpoint.url}/webhooks/shopify")
    assert shop.send_webhook("orders/create", ORDER, event_id="evt-1") == 200
    assert shop.send_webhook("orders/create", ORDER, event_id="evt-1") == 200  # Shopify redelivers
    assert shop.send_webhook("orders/create", ORDER, event_id="evt-2", secret="not-the-app-secret") == 401
    unattributed = {**ORDER, "id": 1, "checkout_token": "x", "landing_site": "/products/water-bottle"}
    assert shop.send_webhook("orders/create", unattributed, event_id="evt-3") == 200
    status, body = post(
        f"{endpoint.url}/webhooks/shopify",
        b"{not json",
        {"X-Shopify-Hmac-Sha256": base64.b64encode(
            __import__("hmac").new(APP_SECRET.encode(), b"{not json", "sha256").digest()).decode(),
         "X-Shopify-Event-Id": "evt-4", "X-Shopify-Topic": "orders/create",
         "X-Shopify-Triggered-At": datetime.now(UTC).isoformat()},
    )  # fmt: skip
    assert status == 400 and "evt-4" in body["error"]
    counts = endpoint.counts
    assert (counts["webhooks"], counts["duplicates"], counts["unsigned"], counts["unattributed"]) == (2, 1, 1, 1)
    stats, rows = stored_events(broker, topic, tmp_path)
    assert rows == [("purchase", "v0a1b2c3d4e5f6a7", "120000000000102", 42.5, "USD")]


def test_pixel_events_are_stored_apart_and_a_forged_checkout_never_shadows_the_signed_order(
    endpoint, broker, topic, tmp_path
):
    landing = "/products/water-bottle?utm_content=v0a1b2c3d4e5f6a7&ad_id=120000000000102"
    base = {"timestamp": "2026-11-20T18:00:00Z", "variant_id": "v0a1b2c3d4e5f6a7", "landing_url": landing}
    batch = [
        {**base, "id": "p1", "name": "product_viewed"},
        {**base, "id": "p2", "name": "add_to_cart"},
        {
            **base,
            "id": "p3",
            "name": "checkout_completed",
            "checkout_token": "c0ffee",
            "value": 42.5,
            "currency": "USD",
        },
        {**base, "id": "p4", "name": "page_teleported"},
        {"id": "p5", "name": "add_to_cart", "timestamp": "2026-11-20T18:00:00Z"},
    ]
    status, body = post(f"{endpoint.url}/pixel", batch)
    assert status == 202 and body["accepted"] == 3
    assert [r["index"] for r in body["rejected"]] == [3, 4]
    assert "'page_teleported'" in body["rejected"][0]["error"] and "variant_id" in body["rejected"][1]["error"]
    status, body = post(f"{endpoint.url}/pixel", {"id": "p6", "name": "product_viewed"})
    assert status == 400 and "field 'timestamp' is missing" in body["error"]
    shop = ShopifySandbox(TOKEN, APP_SECRET, webhook_url=f"{endpoint.url}/webhooks/shopify")
    assert shop.send_webhook("orders/create", ORDER) == 200  # the same checkout as the pixel's (forgeable) claim
    stats, rows = stored_events(broker, topic, tmp_path)
    assert stats.duplicates == 0  # the pixel's claim did not take the signed order's place
    with EventStore(tmp_path / "events.duckdb").connect() as con:
        by_channel = con.execute("select channel, type, sum(value) from events group by all order by all").fetchall()
    assert by_channel == [("pixel", "add_to_cart", 0.0), ("pixel", "product_view", 0.0), ("pixel", "purchase", 42.5),
                          ("shopify", "purchase", 42.5)]  # fmt: skip


def signed(body: bytes, **headers) -> dict:
    digest = __import__("hmac").new(APP_SECRET.encode(), body, "sha256").digest()
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(), "X-Shopify-Topic": "orders/create",
            "X-Shopify-Event-Id": f"evt-{uuid.uuid4()}", "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
            **headers}  # fmt: skip


def declared_only(url: str, path: str, body: bytes, headers: dict) -> int:
    """Declare the whole body but send only its first 64 KiB, then read the answer: a server that refuses on
    the declared size answers at once (a client sending all 2 MiB may instead meet the closed socket)."""
    connection = http.client.HTTPConnection(*url.removeprefix("http://").split(":"), timeout=10)
    connection.putrequest("POST", path)
    for key, value in {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}.items():
        connection.putheader(key, value)
    connection.endheaders()
    connection.send(body[: 64 * 1024])
    return connection.getresponse().status


def test_hostile_requests_get_a_clear_4xx_never_a_500(endpoint):
    url = endpoint.url
    huge = b'{"a": "' + b"x" * (2 << 20) + b'"}'
    assert declared_only(url, "/webhooks/shopify", huge, signed(huge)) == 413  # refused before it is all read
    deep = b"[" * 5000 + b"]" * 5000
    assert post(f"{url}/webhooks/shopify", deep, signed(deep))[0] == 400
    for body in (b"[]", b'"a string"', b"\xff\xfe", b"null"):
        status, answer = post(f"{url}/webhooks/shopify", body, signed(body))
        assert status == 400 and answer["error"], body
    stale = json.dumps(ORDER).encode()
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    assert post(f"{url}/webhooks/shopify", stale, signed(stale, **{"X-Shopify-Triggered-At": old}))[0] == 401
    assert post(f"{url}/webhooks/shopify", stale, signed(stale, **{"X-Shopify-Triggered-At": None}))[0] == 400
    assert post(f"{url}/pixel", deep)[0] == 400
    assert post(f"{url}/pixel", b"\xff\xfe")[0] == 400
    assert post(f"{url}/pixel", [{"id": str(i)} for i in range(501)])[0] == 413
    assert post(f"{url}/pixel", b"{}", {"Content-Type": "text/plain"})[0] == 415  # no preflight: refused
    assert post(f"{url}/pixel", b"{}", {"Origin": "https://evil.example"})[0] == 403
    assert post(f"{url}/pixel", b"{}", {"Origin": None})[0] == 403
    raw = urllib.request.Request(f"{url}/pixel", b"{}", {"Content-Type": "application/json", "Origin": ORIGIN,
                                                         "Content-Length": "abc"})  # fmt: skip
    try:
        urllib.request.urlopen(raw, timeout=10)
        status = 200
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 400


def test_pixel_events_are_rate_limited_per_session(endpoint):
    landing = "/products/water-bottle?utm_content=v0a1b2c3d4e5f6a7&ad_id=120000000000102"
    event = {"timestamp": "2026-11-20T18:00:00Z", "variant_id": "v0a1b2c3d4e5f6a7", "landing_url": landing,
             "name": "product_viewed", "client_id": "one-visitor"}  # fmt: skip
    accepted = 0
    for start in range(0, 600, 100):
        status, body = post(f"{endpoint.url}/pixel", [{**event, "id": f"p{start + i}"} for i in range(100)])
        accepted += body.get("accepted", 0)
    assert 200 <= accepted < 260  # one visitor's burst of 200 (and a few refilled), not 600
    assert endpoint.counts["rate_limited"] >= 340


def test_verify_hmac_is_over_the_raw_body():
    body = b'{"id": 1}'
    good = base64.b64encode(__import__("hmac").new(b"k" * 16, body, "sha256").digest()).decode()
    assert verify_hmac("k" * 16, body, good)
    assert not verify_hmac("k" * 16, body + b" ", good) and not verify_hmac("k" * 16, body, None)


@pytest.mark.slow
def test_with_the_broker_down_an_event_is_refused_503_within_the_bound_and_nothing_else_waits(tmp_path):
    import threading
    import time

    from connectors.kafka_broker import EmbeddedBroker

    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as down:
        ensure_topics(down.bootstrap_servers, {"down": 1})
        producer = EventProducer(down.bootstrap_servers, "down", timeout_s=3.0)
        server = IngestServer(producer, IngestConfig(APP_SECRET, frozenset({ORIGIN}))).start()
        body = json.dumps(ORDER).encode()
        assert post(f"{server.url}/webhooks/shopify", body, signed(body))[0] == 200  # acknowledged: stored
    # the broker is gone now
    answers = {}

    def send() -> None:
        started = time.monotonic()
        answers["status"] = post(f"{server.url}/webhooks/shopify", body, signed(body))[0]
        answers["took"] = time.monotonic() - started

    thread = threading.Thread(target=send)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as resp:  # an unrelated request
        assert resp.status == 200
    health_s = time.monotonic() - started
    thread.join(timeout=30)
    server.stop()
    assert answers["status"] == 503 and answers["took"] < 8  # never a 2xx for what Kafka does not have
    assert health_s < 1.0
    assert server.counts["unavailable"] == 1


@pytest.mark.slow
def test_a_burst_of_2000_connections_is_served_without_refusals(endpoint):
    import asyncio

    host, port = endpoint.url.removeprefix("http://").split(":")

    async def one() -> int:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 20)
        except (TimeoutError, OSError):
            return 0
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        return int(line.split()[1]) if line else 0

    async def burst() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(2000)))

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 2000


@pytest.mark.slow
def test_the_ingest_endpoint_command_stops_within_10s_of_sigterm(broker, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, SHOPIFY_API_SECRET=APP_SECRET, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
               AUTOPLAY_HOME=str(tmp_path / "home"))  # fmt: skip
    proc = subprocess.Popen([str(Path(sys.executable).parent / "autoplay"), "ingest-endpoint", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the endpoint never answered")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize(
    "change",
    [{"total_price": "1e999"}, {"total_price": "-5"}, {"total_price": "nan"}, {"currency": "dollars"},
     {"created_at": "2999-01-01T00:00:00+00:00"}, {"id": [1, 2]}, {"landing_site": 5},
     {"landing_site": "/p?utm_content=" + "v" * 500 + "&ad_id=1"}],
)  # fmt: skip
def test_a_signed_order_with_impossible_fields_gets_400_naming_the_field_never_500(endpoint, change):
    body = json.dumps({**ORDER, **change}).encode()
    status, answer = post(f"{endpoint.url}/webhooks/shopify", body, signed(body))
    assert status == 400 and "order" in answer["error"], answer
