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
MEDIA_FIELDS = (
    "id alt status mediaContentType mediaErrors { code message } preview { image { url } } "
    "... on Model3d { sources { format mimeType url filesize } }"
)
FILE_FIELDS = "id alt fileStatus fileErrors { code message } ... on GenericFile { url }"
#: The product metafield that points at the USDZ for iOS AR Quick Look (a theme links it with rel="ar").
AR_QUICK_LOOK = ("autoplay", "ar_quick_look")

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
  product(id: $id) {{
    id title featuredMedia {{ id }} media(first: 250) {{ nodes {{ {MEDIA_FIELDS} }} }}
    arQuickLook: metafield(namespace: "{AR_QUICK_LOOK[0]}", key: "{AR_QUICK_LOOK[1]}") {{
      reference {{ {FILE_FIELDS} }}
    }}
  }}
}}"""
FILE_CREATE = f"""
mutation fileCreate($files: [FileCreateInput!]!) {{
  fileCreate(files: $files) {{ files {{ {FILE_FIELDS} }} userErrors {{ field message }} }}
}}"""
FILE_NODE = f"""
query file($id: ID!) {{
  node(id: $id) {{ {FILE_FIELDS} }}
}}"""
METAFIELDS_SET = """
mutation metafieldsSet($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) { metafields { namespace key value } userErrors { field message } }
}"""
#: Shopify's limits on a product's 3D model: GLB or USDZ, under 500 MB; above 15 MB Shopify re-compresses it.
MODEL_3D_FORMATS = {".glb": "model/gltf-binary", ".usdz": "model/vnd.usdz+zip"}
MODEL_3D_MAX_BYTES = 500 * 10**6
MODEL_3D_OPTIMISED_BYTES = 15 * 10**6
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
class ModelToAttach:
    """A product's 3D model: the GLB the product page's viewer shows and the USDZ iOS opens in AR.

    ``key`` names this export (model, orientation, colourway, height): a new one is a new model."""

    key: str
    glb_path: Path
    usdz_path: Path
    alt: str

    @property
    def tag(self) -> str:
        return f"[model3d:{self.key}]"


@dataclass(frozen=True)
class ShopifyModel3d:
    product_id: str
    media_id: str
    file_id: str
    status: str
    sources: dict[str, str]  # format -> url, as Shopify serves them


def check_model_3d(path: str | Path) -> int:
    """The file's size, if Shopify takes it as a 3D model; else ShopifyError naming the file and the limit."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_3D_FORMATS:
        raise ShopifyError(f"{path}: Shopify takes 3D models as {' or '.join(MODEL_3D_FORMATS)}, not {suffix!r}")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ShopifyError(f"{path}: cannot read the 3D model ({exc.strerror})") from None
    if size > MODEL_3D_MAX_BYTES:
        raise ShopifyError(f"{path}: {size / 1e6:.0f} MB is over Shopify's 500 MB limit for a 3D model")
    magic = b"glTF\x02\x00\x00\x00" if suffix == ".glb" else b"PK\x03\x04"  # glTF 2 binary; a zip
    if not head.startswith(magic):
        raise ShopifyError(f"{path}: not a {suffix[1:].upper()} file (its first bytes say otherwise)")
    if size > MODEL_3D_OPTIMISED_BYTES:
        log.warning("%s: %.0f MB; Shopify will re-compress a 3D model over 15 MB", path, size / 1e6)
    return size


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
        media = self._wait_ready(product_id, media["id"], f"render of {render.variant_id}")
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
        mime = "image/png" if render.filename.endswith(".png") else "image/jpeg"
        what = f"render of {render.variant_id}"
        source = self._stage(what, render.filename, mime, "IMAGE", Path(render.image_path).read_bytes())
        return self._create_media(product_id, what, source, f"{render.alt} [{render.variant_id}]", "IMAGE")

    def _stage(self, what: str, filename: str, mime: str, resource: str, data: bytes) -> str:
        """Upload a file to a staged target; returns the resource URL that media and files are made from."""
        staged = self.execute(
            f"staged upload of {what}",
            STAGED_UPLOADS,
            {
                "input": [
                    {
                        "filename": filename,
                        "mimeType": mime,
                        "resource": resource,
                        "fileSize": str(len(data)),
                        "httpMethod": "POST",
                    }
                ]
            },
        )["stagedUploadsCreate"]
        self._user_errors(f"staged upload of {what}", staged["userErrors"])
        target = staged["stagedTargets"][0]
        self._upload(target, filename, mime, data)
        return target["resourceUrl"]

    def _create_media(self, product_id: str, what: str, source: str, alt: str, content_type: str) -> dict:
        attached = self.execute(
            f"media attach of {what}",
            ATTACH_MEDIA,
            {
                "product": {"id": product_id},
                "media": [{"originalSource": source, "alt": alt, "mediaContentType": content_type}],
            },
        )["productUpdate"]
        self._user_errors(f"media attach of {what}", attached["userErrors"])
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

    def _wait_ready(self, product_id: str, media_id: str, what: str) -> dict:
        def read() -> dict:
            media = next((m for m in self.product_media(product_id) if m["id"] == media_id), None)
            if media is None:
                raise ShopifyError(f"Shopify media {media_id} of {what} disappeared from {product_id}")
            return media

        return self._settled(read, "status", "mediaErrors", what)

    def _settled(self, read, status_key: str, errors_key: str, what: str) -> dict:
        """Poll ``read`` until Shopify has processed the thing: READY comes back, FAILED or a timeout raise."""
        state = wait_until(read, lambda m: m[status_key] in ("READY", "FAILED"), self.ready_timeout_s, self.poll_s,
                           self.backoff.sleep, self.max_poll_s)  # fmt: skip
        if state[status_key] == "FAILED":
            reasons = "; ".join(f"{e['code']}: {e['message']}" for e in state.get(errors_key) or [])
            raise ShopifyError(f"Shopify could not process the {what}: {reasons or 'FAILED'}")
        if state[status_key] != "READY":
            raise ShopifyError(f"Shopify {what} still {state[status_key]} after {self.ready_timeout_s:.0f} s")
        return state

    def feature(self, product_id: str, media_id: str) -> None:
        """Make a media the product's featured image (Shopify features the first media)."""
        moved = self.execute(
            f"reorder of {product_id}",
            REORDER_MEDIA,
            {"id": product_id, "moves": [{"id": media_id, "newPosition": "0"}]},
        )["productReorderMedia"]
        self._user_errors(f"reorder of {product_id}", moved["mediaUserErrors"])

    # -- the product's 3D model ---------------------------------------------------------------------
    def attach_model(self, product_id: str, model: ModelToAttach) -> ShopifyModel3d:
        """Show the product's 3D model on its page: the GLB as MODEL_3D media (Shopify's viewer) and the USDZ
        as a file the product's ``autoplay.ar_quick_look`` metafield points at, both waited on until READY.

        Both files are checked against Shopify's limits before anything is sent. Idempotent by the model's
        key: a model already attached (or a USDZ already linked) is reused, not uploaded again."""
        for path in (model.glb_path, model.usdz_path):
            check_model_3d(path)
        what = f"3D model {model.key}"
        product = self.execute(f"read of {product_id}", PRODUCT_MEDIA, {"id": product_id})["product"]
        if product is None:
            raise ShopifyError(f"Shopify product {product_id} does not exist (or the token cannot read it)")
        media = next(
            (m for m in product["media"]["nodes"]
             if m["mediaContentType"] == "MODEL_3D" and model.tag in (m.get("alt") or "") and m["status"] != "FAILED"),
            None,
        )  # fmt: skip
        if media is None:
            source = self._stage(what, f"autoplay-{model.key}.glb", MODEL_3D_FORMATS[".glb"], "MODEL_3D",
                                 Path(model.glb_path).read_bytes())  # fmt: skip
            media = self._create_media(product_id, what, source, f"{model.alt} {model.tag}", "MODEL_3D")
        media = self._wait_ready(product_id, media["id"], what)
        linked = ((product.get("arQuickLook") or {}).get("reference")) or {}
        if model.tag in (linked.get("alt") or "") and linked.get("fileStatus") != "FAILED":
            usdz = linked
        else:
            usdz = self._create_file(f"AR model {model.key}", model, product_id)
        usdz = self._settled(lambda: self._file(usdz["id"]), "fileStatus", "fileErrors", f"AR model {model.key}")
        sources = {s["format"]: s["url"] for s in media.get("sources") or []}
        return ShopifyModel3d(product_id, media["id"], usdz["id"], "READY", sources | {"ar_quick_look": usdz["url"]})

    def _create_file(self, what: str, model: ModelToAttach, product_id: str) -> dict:
        source = self._stage(what, f"autoplay-{model.key}.usdz", MODEL_3D_FORMATS[".usdz"], "FILE",
                             Path(model.usdz_path).read_bytes())  # fmt: skip
        created = self.execute(
            f"file create of {what}",
            FILE_CREATE,
            {"files": [{"originalSource": source, "alt": f"{model.alt} (AR) {model.tag}", "contentType": "FILE"}]},
        )["fileCreate"]
        self._user_errors(f"file create of {what}", created["userErrors"])
        file = created["files"][0]
        namespace, key = AR_QUICK_LOOK
        linked = self.execute(
            f"link of {what} to {product_id}",
            METAFIELDS_SET,
            {
                "metafields": [
                    {
                        "ownerId": product_id,
                        "namespace": namespace,
                        "key": key,
                        "type": "file_reference",
                        "value": file["id"],
                    }
                ]
            },  # fmt: skip
        )["metafieldsSet"]
        self._user_errors(f"link of {what} to {product_id}", linked["userErrors"])
        return file

    def _file(self, file_id: str) -> dict:
        node = self.execute(f"read of {file_id}", FILE_NODE, {"id": file_id})["node"]
        if node is None:
            raise ShopifyError(f"Shopify file {file_id} disappeared")
        return node
