"""Shopify Admin GraphQL connector on the official ShopifyAPI SDK: renders attached to products.

The SDK's ``Session`` builds the Admin API address and headers; ``SiteSession`` overrides ``site`` so a
sandbox (or a proxy) is reached through configuration alone. ``GraphQL().execute`` has no timeout and
prints error bodies; ``TimedGraphQL`` keeps the SDK's endpoint and headers and adds a timeout.

Throttling arrives two ways: HTTP 200 with ``THROTTLED`` in ``errors[].extensions`` (the cost bucket is
empty: wait until it refills enough for the query) and HTTP 429 with ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import requests
import shopify

from connectors.retry import Backoff, wait_until
from connectors.secrets import register_secret

log = logging.getLogger("autoplay.shopify")

API_VERSION = "2025-01"
MEDIA_FIELDS = "id alt status mediaContentType mediaErrors { code message } preview { image { url } }"

STAGED_UPLOADS = """
mutation stagedUploadsCreate($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}"""
ATTACH_MEDIA = f"""
mutation productUpdate($product: ProductUpdateInput!, $media: [CreateMediaInput!]) {{
  productUpdate(product: $product, media: $media) {{
    product {{ id media(first: 250) {{ nodes {{ {MEDIA_FIELDS} }} }} }}
    userErrors {{ field message }}
  }}
}}"""
PRODUCT_MEDIA = f"""
query product($id: ID!) {{
  product(id: $id) {{ id title featuredMedia {{ id }} media(first: 250) {{ nodes {{ {MEDIA_FIELDS} }} }} }}
}}"""
REORDER_MEDIA = """
mutation productReorderMedia($id: ID!, $moves: [MoveInput!]!) {
  productReorderMedia(id: $id, moves: $moves) { job { id done } mediaUserErrors { field message } }
}"""


class ShopifyError(RuntimeError):
    """A Shopify call failed; the message names the operation and Shopify's answer, never the token."""


class SiteSession(shopify.Session):
    """A Session whose Admin API lives at ``admin_url`` (a sandbox) instead of https://{shop}."""

    def __init__(self, shop_url: str, version: str, token: str, admin_url: str | None = None) -> None:
        super().__init__(shop_url, version, token)
        self.admin_url = admin_url.rstrip("/") if admin_url else None

    @property
    def site(self) -> str:
        return self.version.api_path(self.admin_url) if self.admin_url else super().site


class TimedGraphQL(shopify.GraphQL):
    """The SDK's GraphQL client with a timeout; returns (status, headers, body text) and never prints."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def execute(self, query: str, variables: dict | None = None, operation_name: str | None = None):  # noqa: ANN201
        headers = self.merge_headers({"Accept": "application/json", "Content-Type": "application/json"}, self.headers)
        data = json.dumps({"query": query, "variables": variables, "operationName": operation_name}).encode()
        request = urllib.request.Request(self.endpoint, data, headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers or {}), exc.read().decode(errors="replace")


@dataclass(frozen=True)
class RenderToAttach:
    """One render of one variant to show on a product page."""

    variant_id: str
    image_path: Path
    alt: str

    @property
    def filename(self) -> str:
        return f"autoplay-{self.variant_id}{Path(self.image_path).suffix.lower()}"


@dataclass(frozen=True)
class ShopifyMedia:
    variant_id: str
    product_id: str
    media_id: str
    status: str
    url: str | None
    featured: bool


class ShopifyAdmin:
    """One shop. ``admin_url`` is only set for a sandbox; production reaches https://{shop}."""

    def __init__(
        self,
        shop: str,
        access_token: str,
        admin_url: str | None = None,
        api_version: str = API_VERSION,
        timeout: float = 30.0,
        backoff: Backoff | None = None,
        ready_timeout_s: float = 120.0,
        poll_s: float = 0.05,
        max_poll_s: float = 2.0,
    ) -> None:
        register_secret(access_token)
        self.shop = shop
        self._session = SiteSession(shop, api_version, access_token, admin_url)
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.ready_timeout_s = ready_timeout_s
        self.poll_s, self.max_poll_s = poll_s, max_poll_s

    def __repr__(self) -> str:
        return f"ShopifyAdmin(shop={self.shop!r})"

    # -- transport ----------------------------------------------------------------------------------
    def execute(self, what: str, query: str, variables: dict) -> dict:
        """Run one operation; wait out the cost throttle and 429s, retry 5xx, timeouts and non-JSON answers;
        GraphQL errors and anything else raise ShopifyError naming ``what``."""
        for attempt in range(self.backoff.max_attempts):
            last = attempt == self.backoff.max_attempts - 1
            shopify.ShopifyResource.activate_session(self._session)
            try:
                status, headers, text = TimedGraphQL(self.timeout).execute(query, variables)
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                reason, wait = f"no answer ({type(exc).__name__})", self.backoff.delay(attempt)
            else:
                reason, wait, data = self._judge(what, status, headers, text, attempt)
                if reason is None:
                    return data
            if last:
                raise ShopifyError(f"Shopify {what} failed after {attempt + 1} attempts: {reason}")
            log.warning("Shopify %s: %s; attempt %d, retrying in %.1f s", what, reason, attempt + 1, wait)
            self.backoff.sleep(wait)
        raise AssertionError("unreachable")

    def _judge(self, what: str, status: int, headers: dict, text: str, attempt: int):
        """(None, 0, data) for a good answer, else (reason, wait) for one worth retrying; raises otherwise."""
        headers = {k.lower(): v for k, v in headers.items()}
        if status == 429:
            retry_after = float(headers.get("retry-after") or 1.0)
            return "HTTP 429 rate limited", retry_after + self.backoff.delay(0) * 0.1, None
        if status >= 500:
            return f"HTTP {status}", self.backoff.delay(attempt), None
        try:
            body = json.loads(text)
        except ValueError:
            return f"HTTP {status} with a non-JSON body", self.backoff.delay(attempt), None
        if status != 200:
            raise ShopifyError(f"Shopify {what} refused: HTTP {status}: {body.get('errors', body)}")
        errors = body.get("errors") or []
        if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
            return "THROTTLED", self._refill_wait(body) + self.backoff.delay(0) * 0.1, None
        if errors:
            raise ShopifyError(f"Shopify {what} failed: " + "; ".join(e.get("message", str(e)) for e in errors))
        return None, 0.0, body["data"]

    @staticmethod
    def _refill_wait(body: dict) -> float:
        """Seconds until the cost bucket holds enough for the query that was throttled."""
        cost = (body.get("extensions") or {}).get("cost") or {}
        bucket = cost.get("throttleStatus") or {}
        needed = float(cost.get("requestedQueryCost") or 0) - float(bucket.get("currentlyAvailable") or 0)
        return max(needed, 0.0) / float(bucket.get("restoreRate") or 50.0)

    @staticmethod
    def _user_errors(what: str, errors: list[dict]) -> None:
        if errors:
            problems = "; ".join(f"{'.'.join(e.get('field') or [])}: {e['message']}" for e in errors)
            raise ShopifyError(f"Shopify {what} refused: {problems}")

    # -- media --------------------------------------------------------------------------------------
    def product_media(self, product_id: str) -> list[dict]:
        product = self.execute(f"read of {product_id}", PRODUCT_MEDIA, {"id": product_id})["product"]
        if product is None:
            raise ShopifyError(f"Shopify product {product_id} does not exist (or the token cannot read it)")
        return product["media"]["nodes"]

    def attach(self, product_id: str, render: RenderToAttach, featured: bool = False) -> ShopifyMedia:
        """Attach one render to a product and wait until Shopify has processed it.

        Idempotent by variant id: a render whose file (``autoplay-<variant>``) is already on the product is
        reused, not uploaded again. FAILED processing raises ShopifyError with Shopify's reason.
        """
        media = self._find(product_id, render.variant_id)
        if media is None:
            media = self._upload_and_attach(product_id, render)
        media = self._wait_ready(product_id, media["id"], render.variant_id)
        if featured:
            self.feature(product_id, media["id"])
        url = (media.get("preview") or {}).get("image") or {}
        return ShopifyMedia(render.variant_id, product_id, media["id"], media["status"], url.get("url"), featured)

    def _find(self, product_id: str, variant_id: str) -> dict | None:
        stem = f"autoplay-{variant_id}."
        for media in self.product_media(product_id):
            url = ((media.get("preview") or {}).get("image") or {}).get("url") or ""
            if stem in url or f"[{variant_id}]" in (media.get("alt") or ""):
                if media["status"] != "FAILED":
                    return media
        return None

    def _upload_and_attach(self, product_id: str, render: RenderToAttach) -> dict:
        data = Path(render.image_path).read_bytes()
        mime = "image/png" if render.filename.endswith(".png") else "image/jpeg"
        staged = self.execute(
            f"staged upload of {render.variant_id}",
            STAGED_UPLOADS,
            {
                "input": [
                    {
                        "filename": render.filename,
                        "mimeType": mime,
                        "resource": "IMAGE",
                        "fileSize": str(len(data)),
                        "httpMethod": "POST",
                    }
                ]
            },
        )["stagedUploadsCreate"]
        self._user_errors(f"staged upload of {render.variant_id}", staged["userErrors"])
        target = staged["stagedTargets"][0]
        self._upload(target, render.filename, mime, data)
        attached = self.execute(
            f"media attach of {render.variant_id}",
            ATTACH_MEDIA,
            {
                "product": {"id": product_id},
                "media": [
                    {
                        "originalSource": target["resourceUrl"],
                        "alt": f"{render.alt} [{render.variant_id}]",
                        "mediaContentType": "IMAGE",
                    }
                ],
            },
        )["productUpdate"]
        self._user_errors(f"media attach of {render.variant_id}", attached["userErrors"])
        return attached["product"]["media"]["nodes"][-1]

    def _upload(self, target: dict, filename: str, mime: str, data: bytes) -> None:
        """POST the file to the staged target (cloud storage, not the Admin API), with the form it asks for."""
        form = {p["name"]: p["value"] for p in target["parameters"]}
        for attempt in range(self.backoff.max_attempts):
            try:
                response = requests.post(
                    target["url"], data=form, files={"file": (filename, data, mime)}, timeout=self.timeout
                )
                if response.status_code < 500:
                    break
                reason = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                reason = type(exc).__name__
            if attempt == self.backoff.max_attempts - 1:
                raise ShopifyError(f"Shopify staged upload of {filename} failed: {reason}")
            self.backoff.sleep(self.backoff.delay(attempt))
        if response.status_code not in (200, 201, 204):
            raise ShopifyError(f"Shopify staged upload of {filename} refused: HTTP {response.status_code}")

    def _wait_ready(self, product_id: str, media_id: str, variant_id: str) -> dict:
        def read() -> dict:
            media = next((m for m in self.product_media(product_id) if m["id"] == media_id), None)
            if media is None:
                raise ShopifyError(f"Shopify media {media_id} of {variant_id} disappeared from {product_id}")
            return media

        media = wait_until(read, lambda m: m["status"] in ("READY", "FAILED"), self.ready_timeout_s, self.poll_s,
                           self.backoff.sleep, self.max_poll_s)  # fmt: skip
        if media["status"] == "FAILED":
            reasons = "; ".join(f"{e['code']}: {e['message']}" for e in media.get("mediaErrors") or [])
            raise ShopifyError(f"Shopify could not process the render of {variant_id}: {reasons or 'FAILED'}")
        if media["status"] != "READY":
            raise ShopifyError(
                f"Shopify media of {variant_id} still {media['status']} after {self.ready_timeout_s:.0f} s"
            )
        return media

    def feature(self, product_id: str, media_id: str) -> None:
        """Make a media the product's featured image (Shopify features the first media)."""
        moved = self.execute(
            f"reorder of {product_id}",
            REORDER_MEDIA,
            {"id": product_id, "moves": [{"id": media_id, "newPosition": "0"}]},
        )["productReorderMedia"]
        self._user_errors(f"reorder of {product_id}", moved["mediaUserErrors"])
