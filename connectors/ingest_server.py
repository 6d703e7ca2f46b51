"""The ingest endpoint on an ASGI stack (starlette on uvicorn): Shopify order webhooks and storefront pixel
events into Kafka. What the payloads mean is in ``storefront_ingest``; this module is the HTTP edge.

- Bodies are limited while they are read (413 beyond the limit, before the whole body is in memory).
- A webhook's HMAC is verified on the raw body before anything parses it; ``X-Shopify-Triggered-At`` older
  than ``max_webhook_age_s`` (a replay) or ahead of the clock is refused.
- Malformed input gets 400 with the reason, never 500.
- Pixel events are untrusted: JSON only (a ``text/plain`` "simple" post, which skips CORS preflight, is
  refused), CORS limited to the shops' origins, rate-limited per client address and per session. They are
  stored on channel ``pixel``, apart from the signed orders, so a forged pixel can never shadow an order.
- An answer of 2xx means Kafka has the events (every send acknowledged by all in-sync replicas within
  ``EventProducer.timeout_s``); otherwise 503 with Retry-After, so the sender retries. Produces run in
  worker threads: one stalled produce never holds up an unrelated request for longer than that bound.

Run it behind a TLS-terminating proxy in production (see the README); it listens on loopback by default.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors import asgi_server
from connectors.asgi_server import BackgroundServer
from connectors.secrets import register_secret
from connectors.storefront_ingest import BadPayload, SeenIds, order_event, pixel_event, verify_hmac

log = logging.getLogger("autoplay.ingest")
access_log = logging.getLogger("autoplay.ingest.access")

MAX_PIXEL_EVENTS = 500


class TooLarge(Exception):
    pass


class Refused(Exception):
    """A request we answer with ``status`` and a reason that names what was wrong."""

    def __init__(self, status: int, reason: str, headers: dict | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


@dataclass
class TokenBucket:
    """``rate`` events a second, bursts up to ``burst``, per key (a client address or a session)."""

    rate: float
    burst: float
    max_keys: int = 100_000
    _state: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str, n: int = 1) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._state.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            ok = tokens >= n
            self._state[key] = (tokens - n if ok else tokens, now)
            if len(self._state) > self.max_keys:
                self._state.popitem(last=False)
            return ok


@dataclass
class IngestConfig:
    app_secret: str
    allowed_origins: frozenset[str] = frozenset()
    max_webhook_bytes: int = 1 << 20
    max_pixel_bytes: int = 1 << 20
    max_webhook_age_s: float = 3600.0  # Shopify retries a failed delivery for hours; older than this is a replay
    max_clock_skew_s: float = 300.0
    pixel_events_per_s_per_client: float = 500.0
    pixel_burst_per_client: float = 20_000.0
    pixel_events_per_s_per_session: float = 5.0
    pixel_burst_per_session: float = 200.0


async def bounded_stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks, refused with 413 as soon as it passes ``limit`` bytes (a declared or a streamed size)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refused(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise Refused(413, f"body of {declared} bytes; at most {limit}")
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"body over {limit} bytes")
            yield chunk
    except ClientDisconnect:
        raise Refused(400, "the client went away before sending the whole body") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes (413 past it)."""
    return b"".join([chunk async for chunk in bounded_stream(request, limit)])


def parse_json(body: bytes, what: str) -> object:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused(400, f"{what}: body is not UTF-8") from None
    except RecursionError:
        raise Refused(400, f"{what}: body is nested too deep") from None
    except ValueError as exc:
        raise Refused(400, f"{what}: body is not JSON ({exc})") from None


class IngestApp:
    """The ASGI application; ``producer`` is an EventProducer (anything with a bounded ``send(events)``)."""

    def __init__(self, producer, config: IngestConfig) -> None:
        register_secret(config.app_secret)
        self.producer = producer
        self.config = config
        self.seen = SeenIds()
        self.per_client = TokenBucket(config.pixel_events_per_s_per_client, config.pixel_burst_per_client)
        self.per_session = TokenBucket(config.pixel_events_per_s_per_session, config.pixel_burst_per_session)
        self.counts = {"webhooks": 0, "duplicates": 0, "unsigned": 0, "stale": 0, "unattributed": 0,
                       "pixel_events": 0, "rate_limited": 0, "unavailable": 0}  # fmt: skip
        self.app = Starlette(
            routes=[
                Route("/webhooks/shopify", self.webhook, methods=["POST"]),
                Route("/pixel", self.pixel, methods=["POST", "OPTIONS"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {}

        async def send_logged(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:  # method, path, status and time: never a header, a query string or a body
            access_log.info("%s %s %s %.1fms", scope["method"], scope["path"], status.get("code", "-"),
                            (time.perf_counter() - started) * 1000)  # fmt: skip

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, **self.counts})

    async def _produce(self, events) -> None:
        try:
            await run_in_threadpool(self.producer.send, events)
        except Exception as exc:  # the broker is down or slow: the sender retries on a non-2xx answer
            self.counts["unavailable"] += 1
            log.error("%d events not acknowledged by Kafka: %s", len(events), exc)
            raise Refused(503, "events could not be stored; retry", {"Retry-After": "30"}) from None

    @staticmethod
    def _refused(exc: Refused, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": exc.reason}, status_code=exc.status, headers={**(headers or {}), **exc.headers})

    # -- webhooks ---------------------------------------------------------------------------------
    async def webhook(self, request: Request) -> Response:
        try:
            return await self._webhook(request)
        except Refused as exc:
            return self._refused(exc)

    def _check_fresh(self, triggered_at: str | None) -> None:
        if not triggered_at:
            raise Refused(400, "header X-Shopify-Triggered-At is missing")
        try:
            when = datetime.fromisoformat(triggered_at.replace("Z", "+00:00"))
        except ValueError:
            raise Refused(400, f"header X-Shopify-Triggered-At {triggered_at!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise Refused(400, "header X-Shopify-Triggered-At has no time zone")
        age = (datetime.now(UTC) - when).total_seconds()
        if age > self.config.max_webhook_age_s or age < -self.config.max_clock_skew_s:
            self.counts["stale"] += 1
            raise Refused(401, f"webhook triggered {age:.0f} s ago: outside the accepted window (a replay?)")

    async def _webhook(self, request: Request) -> Response:
        body = await read_body(request, self.config.max_webhook_bytes)
        if not verify_hmac(self.config.app_secret, body, request.headers.get("X-Shopify-Hmac-Sha256")):
            self.counts["unsigned"] += 1
            log.warning("webhook refused: HMAC does not match (topic %s)", request.headers.get("X-Shopify-Topic"))
            raise Refused(401, "HMAC verification failed")
        self._check_fresh(request.headers.get("X-Shopify-Triggered-At"))
        topic = request.headers.get("X-Shopify-Topic", "")
        event_id = request.headers.get("X-Shopify-Event-Id") or ""
        if not event_id:
            raise Refused(400, "header X-Shopify-Event-Id is missing")
        order = parse_json(body, f"webhook {topic} {event_id}")
        if not isinstance(order, dict):
            raise Refused(400, f"webhook {topic} {event_id}: body must be a JSON object")
        try:
            event = order_event(order) if topic == "orders/create" else None
        except BadPayload as exc:
            raise Refused(400, f"webhook {topic} {event_id}: {exc}") from None
        if not self.seen.add(event_id):
            self.counts["duplicates"] += 1
            return JSONResponse({"duplicate": event_id})
        self.counts["webhooks"] += 1
        if event is None:
            self.counts["unattributed"] += topic == "orders/create"
            return JSONResponse({"ignored": f"{topic}: not from an autoplay ad" if topic == "orders/create" else topic})
        try:
            await self._produce([event])
        except Refused:
            self.seen.forget(event_id)
            raise
        return JSONResponse({"produced": 1})

    # -- pixel ------------------------------------------------------------------------------------
    def _cors(self, request: Request) -> dict:
        origin = request.headers.get("origin")
        if origin is None or origin not in self.config.allowed_origins:
            raise Refused(403, f"origin {origin!r} is not one of the shops' origins")
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Allow-Methods": "POST", "Vary": "Origin"}  # fmt: skip

    async def pixel(self, request: Request) -> Response:
        headers: dict = {}
        try:
            headers = self._cors(request)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
            return await self._pixel(request, headers)
        except Refused as exc:
            return self._refused(exc, headers)

    async def _pixel(self, request: Request, headers: dict) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise Refused(415, f"Content-Type {ctype or 'none'!r}: pixel events are application/json")
        body = await read_body(request, self.config.max_pixel_bytes)
        payload = parse_json(body, "pixel")
        items = payload if isinstance(payload, list) else [payload]
        if len(items) > MAX_PIXEL_EVENTS:
            raise Refused(413, f"{len(items)} events in one request; at most {MAX_PIXEL_EVENTS}")
        client = request.client.host if request.client else "unknown"
        if not self.per_client.take(client, len(items)):
            self.counts["rate_limited"] += len(items)
            raise Refused(429, f"too many pixel events from {client}; slow down", {"Retry-After": "5"})
        events, rejected = [], []
        for i, raw in enumerate(items):
            where = f"event {i}" if isinstance(payload, list) else "event"
            try:
                session = str(raw.get("client_id") or client) if isinstance(raw, dict) else client
                if not self.per_session.take(session):
                    self.counts["rate_limited"] += 1
                    rejected.append({"index": i, "error": f"{where}: session {session} is over its rate"})
                    continue
                events.append(pixel_event(raw, where))
            except BadPayload as exc:
                rejected.append({"index": i, "error": str(exc)})
        if rejected and not events:
            raise Refused(400, rejected[0]["error"])
        if events:
            await self._produce(events)
        self.counts["pixel_events"] += len(events)
        return JSONResponse({"accepted": len(events), "rejected": rejected}, status_code=202, headers=headers)


class IngestServer(BackgroundServer):
    """The ingest endpoint on uvicorn in a background thread (for `autoplay up` and the tests)."""

    def __init__(self, producer, config: IngestConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.ingest = IngestApp(producer, config)
        super().__init__(self.ingest, host, port, name="ingest endpoint")

    @property
    def counts(self) -> dict:
        return self.ingest.counts


def serve_forever(producer, config: IngestConfig, host: str, port: int) -> None:
    """`autoplay ingest-endpoint`: in the foreground; uvicorn stops on SIGINT or SIGTERM within seconds."""
    asgi_server.serve_forever(IngestApp(producer, config), host, port)
