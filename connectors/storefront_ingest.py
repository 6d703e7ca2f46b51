"""What the ingest endpoint's payloads mean: Shopify order webhooks and storefront pixel events as events.

An ``orders/create`` webhook (HMAC-signed by Shopify) becomes a ``purchase`` on channel ``shopify``, joined
to the ad and variant through the landing URL's url_tags: the only source of truth for a purchase and its
value. The custom web pixel's ``product_viewed``, ``add_to_cart`` and ``checkout_completed`` are untrusted
(anyone can post them): they become events on channel ``pixel`` with ids of their own, so a forged pixel
event can never override, shadow or deduplicate away a signed order. The learner reads neither: it learns
from the platform's figures (Meta insights). The HTTP edge is ``connectors.ingest_server``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime

from pydantic import ValidationError

from connectors import url_tags
from connectors.events import FUTURE_TOLERANCE, AdditiveEvent, stable_event_id

log = logging.getLogger("autoplay.ingest")

PIXEL_TYPES = {"product_viewed": "product_view", "add_to_cart": "add_to_cart", "checkout_completed": "purchase"}
#: The channel of unauthenticated storefront events: apart from the signed orders (channel "shopify").
PIXEL_CHANNEL = "pixel"


class BadPayload(ValueError):
    """A webhook or pixel event we cannot turn into an event; the message names the field."""


def verify_hmac(secret: str, body: bytes, signature: str | None) -> bool:
    """Shopify signs the raw body: base64(HMAC-SHA256(app secret, body)), compared in constant time."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, signature.strip())


def purchase_id(checkout_token: str | None, order_id: object, channel: str = "shopify") -> str:
    """One id per purchase and channel: a redelivered order counts once, and a pixel's claim of the same
    checkout lives in its own namespace, where it cannot take a signed order's place."""
    return stable_event_id(channel, "purchase", checkout_token or f"order-{order_id}")


def _when(value: object, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadPayload(f"{field}: {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise BadPayload(f"{field}: {value!r} has no time zone")
    if when > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise BadPayload(f"{field}: {value!r} is in the future")
    return when


def order_event(order: dict) -> AdditiveEvent | None:
    """The purchase an ``orders/create`` webhook reports, or None when the order did not come from an ad
    of ours (no variant in its landing URL)."""
    for field in ("id", "created_at", "total_price", "currency"):
        if order.get(field) in (None, ""):
            raise BadPayload(f"order field '{field}' is missing")
    if not isinstance(order["id"], (int, str)) or not isinstance(order.get("landing_site") or "", str):
        raise BadPayload("order fields 'id' and 'landing_site' must be a number or string and a string")
    variant, ad = url_tags.variant_and_ad(order.get("landing_site") or "")
    if variant is None:
        return None
    try:
        value = float(order["total_price"])
    except (TypeError, ValueError):
        raise BadPayload(f"order field 'total_price': {order['total_price']!r} is not a number") from None
    return _event(
        "order",
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
    return _event(
        where,
        type=kind,
        event_id=purchase_id(raw["checkout_token"], None, PIXEL_CHANNEL)
        if kind == "purchase"
        else f"pixel-{raw['id']}",
        variant_id=str(raw["variant_id"]),
        channel=PIXEL_CHANNEL,
        external_id=ad,
        occurred_at=_when(raw["timestamp"], f"{where}: field 'timestamp'"),
        value=value,
        currency=raw.get("currency") if value > 0 else None,
    )


def _event(where: str, **fields) -> AdditiveEvent:
    """The event, or BadPayload naming the field the event schema refuses (a value of 1e999, a bad currency,
    an id too long) and why, in one line."""
    try:
        return AdditiveEvent(**fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "event"
        raise BadPayload(f"{where}: field '{field}': {first['msg'].removeprefix('Value error, ')}") from None


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
