"""Which Meta account and Shopify shop a command talks to: configured ones, else the local sandbox.

Configured means the token is in the environment (or the secrets file): META_ACCESS_TOKEN with
META_GRAPH_URL unset reaches the real Graph API; SHOPIFY_ACCESS_TOKEN reaches https://{shop}. Otherwise
the sandbox that `autoplay sandbox` runs is found through its marker file, and a command that publishes
starts a temporary one when none is running, so it works on a machine with no accounts.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from connectors.meta import DEFAULT_GRAPH_URL, MetaAds
from connectors.sandbox.meta_graph import MetaGraphSandbox
from connectors.sandbox.shopify_admin import ShopifySandbox
from connectors.shopify import ShopifyAdmin
from creative.brief import Brief
from experiments.market import SimulatedMarket
from pipelines.resources import MetaResource, ShopifyResource
from pipelines.settings import Settings


class NoChannel(RuntimeError):
    """Neither a configured account nor a running sandbox; the message says what to set or run."""


@dataclass(frozen=True)
class Target:
    """A client and where it points: ``where`` is for people (never holds a token)."""

    client: MetaAds | ShopifyAdmin
    where: str


def sandbox_marker(settings: Settings) -> Path:
    return settings.home / "sandbox.json"


def running_sandbox(settings: Settings) -> dict | None:
    """The addresses and sandbox tokens `autoplay sandbox` wrote, if it is running."""
    try:
        return json.loads(sandbox_marker(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class Sandboxes:
    """The running sandbox platforms and their (sandbox-only) tokens."""

    meta: MetaGraphSandbox
    shop: ShopifySandbox
    meta_token: str
    shop_token: str
    app_secret: str

    def admit(self, brief: Brief) -> None:
        """Open the brief's ad account and product in the sandboxes (a brief added while they run)."""
        with self.meta.lock:
            if brief.meta and "act_" + brief.meta.account_id.removeprefix("act_") not in self.meta.accounts:
                self.meta.add_account(brief.meta.account_id, brief.meta.campaign_id)
        with self.shop.lock:
            if brief.shopify and brief.shopify.product_id not in self.shop.products:
                self.shop.add_product(brief.shopify.product_id, brief.product.message)

    def addresses(self) -> dict[str, str]:
        """What other commands need to reach them (the marker file of `autoplay sandbox`)."""
        return {"meta_url": self.meta.url, "meta_token": self.meta_token, "shop_url": self.shop.url,
                "shop_token": self.shop_token, "app_secret": self.app_secret}  # fmt: skip


@contextmanager
def serve_sandboxes(briefs: Brief | list[Brief], market: SimulatedMarket | None = None) -> Iterator[Sandboxes]:
    """Meta and Shopify sandboxes for the briefs' ad accounts and products, with fresh sandbox tokens. The
    shop's orders and pixel events follow the ads' delivery (sent wherever ``shop.webhook_url``/``pixel_url``
    say)."""
    briefs = [briefs] if isinstance(briefs, Brief) else list(briefs)
    tokens = secrets.token_urlsafe(24), f"shpat_{secrets.token_hex(16)}", secrets.token_hex(16)
    accounts = {b.meta.account_id: b.meta.campaign_id for b in briefs if b.meta} or {
        "act_1000000000001": "120000000000001"
    }
    (account, campaign), *more = accounts.items()
    products = {b.shopify.product_id: b.product.message for b in briefs if b.shopify} or None
    with ExitStack() as stack:
        meta = stack.enter_context(
            MetaGraphSandbox(
                market or SimulatedMarket(), tokens[0], account, campaign_id=campaign, more_accounts=dict(more)
            )
        )
        shop = stack.enter_context(ShopifySandbox(tokens[1], tokens[2], products=products))
        meta.on_day.append(shop.storefront_day)
        yield Sandboxes(meta, shop, *tokens)


@contextmanager
def channel(settings: Settings, brief: Brief, name: str, temporary_ok: bool = True) -> Iterator[Target]:
    """A client for channel ``name`` (meta or shopify) of ``brief``: configured, running sandbox, or a
    temporary sandbox (only when ``temporary_ok``)."""
    token_var = {"meta": "META_ACCESS_TOKEN", "shopify": "SHOPIFY_ACCESS_TOKEN"}[name]
    if getattr(brief, name) is None:
        raise NoChannel(f"the brief has no '{name}' section naming the {'ad account' if name == 'meta' else 'shop'}")
    key = {"meta": "meta", "shopify": "shop"}[name]
    with ExitStack() as stack:
        token, url, where = os.environ.get(token_var), None, ""
        if token:
            url = settings.meta_graph_url if name == "meta" else settings.shopify_admin_url
            where = url or (DEFAULT_GRAPH_URL if name == "meta" else f"https://{brief.shopify.shop}")
        elif (running := running_sandbox(settings)) is not None:
            token, url = running[f"{key}_token"], running[f"{key}_url"]
            where = f"the sandbox at {url} (autoplay sandbox)"
        elif temporary_ok:
            started = stack.enter_context(serve_sandboxes(brief)).addresses()
            token, url = started[f"{key}_token"], started[f"{key}_url"]
            where = f"a temporary sandbox at {url} (it stops with this command; run `autoplay sandbox` to keep one)"
        else:
            raise NoChannel(f"{token_var} is not set and no sandbox is running: set it (or put it in the secrets "
                            "file), or run `autoplay sandbox` in another terminal")  # fmt: skip
        if name == "meta":
            client = MetaResource(access_token=token, graph_url=url or DEFAULT_GRAPH_URL,
                                  graph_video_url=settings.meta_graph_video_url or "").client(brief)  # fmt: skip
        else:
            client = ShopifyResource(access_token=token, admin_url=url or "").client(brief)
        yield Target(client, where)
