"""The HTTP ingest endpoint: Shopify order webhooks and storefront pixel events into Kafka.

``POST /webhooks/shopify``: Shopify's webhooks. The HMAC of the raw body is checked against the app
secret (401 when wrong), redeliveries are dropped on ``X-Shopify-Event-Id``, and an ``orders/create``
becomes a ``purchase`` joined to the ad and variant through the landing URL's url_tags.

``POST /pixel``: the custom web pixel's events, one object or a list: ``product_viewed``,
``add_to_cart`` and ``checkout_completed``, each carrying ``variant_id`` (the render shown).

Both answer only after Kafka has acknowledged the events (503 otherwise, so the sender retries and
nothing is lost). A purchase seen by both the webhook and the pixel has one ``event_id`` (from the
checkout token), so the event store counts it once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
from collections import OrderedDict
from datetime import datetime

from connectors import url_tags
from connectors.events import AdditiveEvent, stable_event_id
from connectors.http_server import HttpServer, Request
from connectors.secrets import register_secret

log = logging.getLogger("autoplay.ingest")

PIXEL_TYPES = {"product_viewed": "product_view", "add_to_cart": "add_to_cart", "checkout_completed": "purchase"}
MAX_BATCH = 500
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Content-Type"}


class BadPayload(ValueError):
    """A webhook or pixel event we cannot turn into an event; the message names the field."""


def verify_hmac(secret: str, body: bytes, signature: str | None) -> bool:
    """Shopify signs the raw body: base64(HMAC-SHA256(app secret, body)), compared in constant time."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, signature.strip())


def purchase_id(checkout_token: str | None, order_id: object) -> str:
    """One id per purchase whoever reports it (webhook or pixel), so it is counted once."""
    return stable_event_id("shopify", "purchase", checkout_token or f"order-{order_id}")


def _when(value: object, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadPayload(f"{field}: {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise BadPayload(f"{field}: {value!r} has no time zone")
    return when


def order_event(order: dict) -> AdditiveEvent | None:
    """The purchase an ``orders/create`` webhook reports, or None when the order did not come from an ad
    of ours (no variant in its landing URL)."""
    for field in ("id", "created_at", "total_price", "currency"):
        if order.get(field) in (None, ""):
            raise BadPayload(f"order field '{field}' is missing")
    variant, ad = url_tags.variant_and_ad(order.get("landing_site") or "")
    if variant is None:
        return None
    try:
        value = float(order["total_price"])
    except ValueError:
        raise BadPayload(f"order field 'total_price': {order['total_price']!r} is not a number") from None
    return AdditiveEvent(
        type="purchase",
        event_id=purchase_id(order.get("checkout_token"), order["id"]),
        variant_id=variant,
        channel="shopify",
        external_id=ad,
        occurred_at=_when(order["created_at"], "order field 'created_at'"),
        value=value,
        currency=str(order["currency"]),
    )


def pixel_event(raw: object, where: str = "event") -> AdditiveEvent:
    """One pixel event as an additive event; BadPayload names the field that is wrong."""
    if not isinstance(raw, dict):
        raise BadPayload(f"{where}: must be a JSON object")
    for field in ("id", "name", "timestamp", "variant_id"):
        if not raw.get(field):
            raise BadPayload(f"{where}: field '{field}' is missing")
    if raw["name"] not in PIXEL_TYPES:
        raise BadPayload(f"{where}: field 'name': {raw['name']!r} is not one of {sorted(PIXEL_TYPES)}")
    kind = PIXEL_TYPES[raw["name"]]
    ad = url_tags.variant_and_ad(str(raw.get("landing_url") or ""))[1]
    value = 0.0
    if kind == "purchase":
        if not raw.get("checkout_token"):
            raise BadPayload(f"{where}: field 'checkout_token' is missing (checkout_completed)")
        try:
            value = float(raw.get("value") or 0.0)
        except (TypeError, ValueError):
            raise BadPayload(f"{where}: field 'value': {raw.get('value')!r} is not a number") from None
    try:
        return AdditiveEvent(
            type=kind,
            event_id=purchase_id(raw["checkout_token"], None) if kind == "purchase" else f"pixel-{raw['id']}",
            variant_id=str(raw["variant_id"]),
            channel="shopify",
            external_id=ad,
            occurred_at=_when(raw["timestamp"], f"{where}: field 'timestamp'"),
            value=value,
            currency=raw.get("currency") if value > 0 else None,
        )
    except ValueError as exc:  # pydantic's message names the field
        raise BadPayload(f"{where}: {exc}".replace("\n", " ")) from None


class SeenIds:
    """The last ``size`` webhook event ids, to drop Shopify's redeliveries before they reach Kafka."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, event_id: str) -> bool:
        """True when ``event_id`` is new."""
        with self._lock:
            if event_id in self._ids:
                return False
            self._ids[event_id] = None
            if len(self._ids) > self.size:
                self._ids.popitem(last=False)
            return True

    def forget(self, event_id: str) -> None:
        with self._lock:
            self._ids.pop(event_id, None)


class IngestEndpoint(HttpServer):
    """Serves the two routes; ``producer`` is an EventProducer (anything with ``send(events)``)."""

    def __init__(self, producer, app_secret: str, **kw) -> None:
        super().__init__(**kw)
        register_secret(app_secret)
        self.producer = producer
        self.app_secret = app_secret
        self.seen = SeenIds()
        self.counts = {"webhooks": 0, "duplicates": 0, "unsigned": 0, "unattributed": 0, "pixel_events": 0}
        self._produce_lock = threading.Lock()

    def handle(self, request: Request) -> tuple[int, dict, object]:
        if request.path == "/health":
            return 200, {}, {"ok": True, **self.counts}
        if request.path == "/pixel" and request.method == "OPTIONS":
            return 204, CORS, b""
        if request.method != "POST":
            return 405, {}, {"error": f"{request.method} {request.path}: only POST is served"}
        if request.path == "/webhooks/shopify":
            return self._webhook(request)
        if request.path == "/pixel":
            status, headers, body = self._pixel(request)
            return status, {**CORS, **headers}, body
        return 404, {}, {"error": f"no route {request.path}; POST /webhooks/shopify or /pixel"}

    def _produce(self, events: list[AdditiveEvent]) -> None:
        with self._produce_lock:
            self.producer.send(events)

    def _webhook(self, request: Request) -> tuple[int, dict, object]:
        if not verify_hmac(self.app_secret, request.body, request.headers.get("X-Shopify-Hmac-Sha256")):
            self.counts["unsigned"] += 1
            log.warning("webhook refused: HMAC does not match (topic %s)", request.headers.get("X-Shopify-Topic"))
            return 401, {}, {"error": "HMAC verification failed"}
        topic = request.headers.get("X-Shopify-Topic", "")
        event_id = request.headers.get("X-Shopify-Event-Id") or ""
        if not event_id:
            return 400, {}, {"error": "header X-Shopify-Event-Id is missing"}
        if not self.seen.add(event_id):
            self.counts["duplicates"] += 1
            return 200, {}, {"duplicate": event_id}
        try:
            order = json.loads(request.body)
            event = order_event(order) if topic == "orders/create" else None
        except (ValueError, BadPayload) as exc:
            self.seen.forget(event_id)
            return 400, {}, {"error": f"webhook {topic} {event_id}: {exc}"}
        self.counts["webhooks"] += 1
        if event is None:
            self.counts["unattributed"] += topic == "orders/create"
            return 200, {}, {"ignored": f"{topic}: not from an autoplay ad" if topic == "orders/create" else topic}
        try:
            self._produce([event])
        except Exception as exc:  # Kafka is down: Shopify retries on a non-2xx answer
            self.seen.forget(event_id)
            log.error("webhook %s not produced: %s", event_id, exc)
            return 503, {"Retry-After": "30"}, {"error": "events could not be stored; retry"}
        return 200, {}, {"produced": 1}

    def _pixel(self, request: Request) -> tuple[int, dict, object]:
        try:
            payload = json.loads(request.body or b"null")
        except ValueError as exc:
            return 400, {}, {"error": f"body is not JSON: {exc}"}
        items = payload if isinstance(payload, list) else [payload]
        if len(items) > MAX_BATCH:
            return 413, {}, {"error": f"{len(items)} events in one request; at most {MAX_BATCH}"}
        events, rejected = [], []
        for i, raw in enumerate(items):
            try:
                events.append(pixel_event(raw, f"event {i}" if isinstance(payload, list) else "event"))
            except BadPayload as exc:
                rejected.append({"index": i, "error": str(exc)})
        if rejected and not events:
            return 400, {}, {"error": rejected[0]["error"], "rejected": rejected}
        try:
            self._produce(events)
        except Exception as exc:
            log.error("pixel batch not produced: %s", exc)
            return 503, {"Retry-After": "30"}, {"error": "events could not be stored; retry"}
        self.counts["pixel_events"] += len(events)
        return 202, {}, {"accepted": len(events), "rejected": rejected}
