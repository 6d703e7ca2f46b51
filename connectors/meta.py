"""Meta Marketing API connector on the official facebook-business SDK.

Production and sandbox take the same code path: only ``graph_url`` and the token differ. The SDK has
no idempotency key, so every create looks up by name first (names carry brief and variant id).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import requests
from facebook_business.adobjects.ad import Ad
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adset import AdSet
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from connectors.graph_http import Backoff, BadGraphResponse, GraphTransport, classify, regain_seconds
from connectors.secrets import register_secret

log = logging.getLogger("autoplay.meta")

DEFAULT_GRAPH_URL = "https://graph.facebook.com"


class MetaError(RuntimeError):
    """A Marketing API call failed; the message names the request and Meta's error, never the token."""


class MetaThrottled(MetaError):
    """Meta throttles the account for longer than we are willing to wait; ``wait_s`` says how long."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


@dataclass(frozen=True)
class CreativeToPublish:
    """What the loop asks Meta to run: one rendered still of one variant."""

    variant_id: str
    brief: str
    image_path: Path
    link_url: str
    message: str
    factors: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"autoplay|{self.brief}|{self.variant_id}"


@dataclass(frozen=True)
class MetaPublication:
    variant_id: str
    image_hash: str
    creative_id: str
    adset_id: str
    ad_id: str
    status: str


def variant_from_name(name: str) -> str | None:
    """The variant id in a name made by ``CreativeToPublish.name``, or None for ads that are not ours."""
    parts = name.split("|")
    return parts[2] if len(parts) == 3 and parts[0] == "autoplay" else None


class MetaAds:
    """One ad account. ``page_id`` is the Facebook page the ads run as."""

    def __init__(
        self,
        access_token: str,
        account_id: str,
        page_id: str,
        campaign_id: str,
        graph_url: str = DEFAULT_GRAPH_URL,
        api_version: str | None = None,
        timeout: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        register_secret(access_token)
        session = FacebookSession(access_token=access_token, timeout=timeout)
        session.GRAPH = graph_url.rstrip("/")
        transport = GraphTransport(timeout)
        session.requests.mount("https://", transport)
        session.requests.mount("http://", transport)
        self.backoff = backoff or Backoff()
        # The SDK sends the token as a query parameter, where HTTP libraries log it; send it as a header.
        session.requests.params.pop("access_token", None)
        session.requests.headers["Authorization"] = f"Bearer {access_token}"
        self._api = FacebookAdsApi(session, api_version=api_version)
        self.account_id = account_id if account_id.startswith("act_") else f"act_{account_id}"
        self.page_id = page_id
        self.campaign_id = campaign_id
        self._account = AdAccount(self.account_id, api=self._api)

    def _call(self, what: str, fn, *args, **kwargs):
        """Call the SDK; retry throttling (waiting as the usage headers say), transient errors, timeouts and
        non-JSON answers with jittered backoff; anything else, or the last failure, is a MetaError."""
        for attempt in range(self.backoff.max_attempts):
            last = attempt == self.backoff.max_attempts - 1
            try:
                return fn(*args, **kwargs)
            except FacebookRequestError as err:
                reason = f"HTTP {err.http_status()} code {err.api_error_code()}: {err.api_error_message()}"
                kind = classify(err.api_error_code(), err.http_status(), bool(err.api_transient_error()))
                if kind is None or last:
                    tries = f" after {attempt + 1} attempts" if kind else ""
                    raise MetaError(f"Meta {what} failed{tries}: {reason}") from None
                regain = regain_seconds(err.http_headers()) if kind == "throttle" else 0.0
                if regain > self.backoff.max_wait_s:
                    raise MetaThrottled(
                        f"Meta {what} throttled: {reason}; the account may call again in {regain / 60:.0f} min",
                        regain,
                    ) from None
                wait = self.backoff.delay(attempt, regain)
            except (requests.Timeout, requests.ConnectionError, BadGraphResponse) as exc:
                reason = str(exc) if isinstance(exc, BadGraphResponse) else type(exc).__name__
                if last:
                    raise MetaError(f"Meta {what} failed after {attempt + 1} attempts: {reason}") from None
                wait = self.backoff.delay(attempt)
            log.warning("Meta %s: %s; attempt %d, retrying in %.1f s", what, reason, attempt + 1, wait)
            self.backoff.sleep(wait)
        raise AssertionError("unreachable")

    def _find_or_create(self, edge: str, name: str, what: str, params: dict) -> dict:
        """The object named ``name`` on ``edge``, created with ``params`` only if no such object exists.

        The SDK has no idempotency key: looking up by name first is what makes a retry or a rerun after
        a crash reuse what was already created instead of creating it twice.
        """
        getter, creator = {
            "adcreatives": (self._account.get_ad_creatives, self._account.create_ad_creative),
            "adsets": (self._account.get_ad_sets, self._account.create_ad_set),
            "ads": (self._account.get_ads, self._account.create_ad),
        }[edge]
        lookup = {"filtering": [{"field": "name", "operator": "EQUAL", "value": name}], "limit": 5}

        def find_or_create() -> dict:  # a retry looks up again: a create whose answer was lost is found
            found = list(getter(fields=["id", "name", "status"], params=lookup))
            if found:
                return dict(found[0])
            created = creator(params={"name": name, **params})
            return {"id": created["id"], "status": params.get("status")}

        return self._call(what, find_or_create)

    def publish(self, creative: CreativeToPublish, daily_budget_cents: int, activate: bool = False) -> MetaPublication:
        """Upload, create creative, ad set and ad for one variant; reuses whatever exists already."""
        status = "ACTIVE" if activate else "PAUSED"
        data = Path(creative.image_path).read_bytes()
        image = self._call(
            f"image upload for {creative.variant_id}",
            self._account.create_ad_image,
            params={"bytes": base64.b64encode(data).decode(), "name": f"{creative.variant_id}.png"},
        )
        image_hash = image["hash"]
        tags = {
            "utm_source": "meta",
            "utm_medium": "paid_social",
            "utm_content": creative.variant_id,
            "ad_id": "{{ad.id}}",
            **{f"ap_{k}": v.lstrip("#") for k, v in creative.factors.items()},
        }
        creative_id = self._find_or_create(
            "adcreatives",
            creative.name,
            f"creative create for {creative.variant_id}",
            {
                "object_story_spec": {
                    "page_id": self.page_id,
                    "link_data": {
                        "image_hash": image_hash,
                        "link": creative.link_url,
                        "message": creative.message,
                        "call_to_action": {"type": "SHOP_NOW", "value": {"link": creative.link_url}},
                    },
                },
                "url_tags": "&".join(f"{k}={v}" for k, v in tags.items()),
                "degrees_of_freedom_spec": {
                    "creative_features_spec": {"standard_enhancements": {"enroll_status": "OPT_OUT"}}
                },
            },
        )["id"]
        adset_id = self._find_or_create(
            "adsets",
            creative.name,
            f"ad set create for {creative.variant_id}",
            {
                "campaign_id": self.campaign_id,
                "daily_budget": int(daily_budget_cents),
                "billing_event": "IMPRESSIONS",
                "optimization_goal": "LINK_CLICKS",
                "status": status,
                "targeting": {"geo_locations": {"countries": ["US"]}},
            },
        )["id"]
        ad = self._find_or_create(
            "ads",
            creative.name,
            f"ad create for {creative.variant_id}",
            {
                "adset_id": adset_id,
                "creative": {"creative_id": creative_id},
                "status": status,
            },
        )
        ad_id, ad_status = ad["id"], ad["status"]
        return MetaPublication(creative.variant_id, image_hash, creative_id, adset_id, ad_id, ad_status)

    def set_delivery(self, adset_id: str, ad_id: str, daily_budget_cents: int, active: bool) -> None:
        """Apply an allocation: the ad set's daily budget and whether the ad and its ad set run."""
        status = "ACTIVE" if active else "PAUSED"
        self._call(
            f"budget update of ad set {adset_id}",
            AdSet(adset_id, api=self._api).api_update,
            params={"daily_budget": int(daily_budget_cents), "status": status},
        )
        self._call(f"status update of ad {ad_id}", Ad(ad_id, api=self._api).api_update, params={"status": status})

    def pause_all(self, brief: str | None = None) -> list[str]:
        """The one switch: pause every ad the loop published (of one brief, or all) and its ad set.
        Returns the ids of the ads paused; ads not named by the loop are never touched."""
        ours = f"autoplay|{brief}|" if brief else "autoplay|"
        lookup = {"filtering": [{"field": "name", "operator": "CONTAIN", "value": ours}], "limit": 100}
        ads = self._call(
            "listing of published ads",
            lambda: [
                dict(a) for a in self._account.get_ads(fields=["id", "name", "adset_id", "status"], params=lookup)
            ],
        )
        paused = []
        for ad in ads:
            if not ad["name"].startswith(ours) or variant_from_name(ad["name"]) is None:
                continue
            self._call(f"pause of ad {ad['id']}", Ad(ad["id"], api=self._api).api_update, params={"status": "PAUSED"})
            self._call(
                f"pause of ad set {ad['adset_id']}",
                AdSet(ad["adset_id"], api=self._api).api_update,
                params={"status": "PAUSED"},
            )
            paused.append(ad["id"])
        log.info("paused %d ads%s", len(paused), f" of brief {brief}" if brief else "")
        return paused

    def insights(self, since: date, until: date) -> list[dict]:
        """Ad-level daily insights, all pages, with Meta's string numbers turned into numbers."""
        params = {
            "level": "ad",
            "time_increment": 1,
            "limit": 100,
            "time_range": {"since": since.isoformat(), "until": until.isoformat()},
        }
        fields = ["ad_id", "ad_name", "adset_id", "impressions", "clicks", "spend", "actions", "action_values"]
        cursor = self._call("insights read", self._account.get_insights, fields=fields, params=params)
        rows = []
        for row in self._call("insights paging", list, cursor):
            row = dict(row)
            actions = {a["action_type"]: float(a["value"]) for a in row.get("actions", [])}
            values = {a["action_type"]: float(a["value"]) for a in row.get("action_values", [])}
            rows.append(
                {
                    "ad_id": row["ad_id"],
                    "ad_name": row["ad_name"],
                    "day": row["date_start"],
                    "impressions": float(row["impressions"]),
                    "clicks": float(row["clicks"]),
                    "spend": float(row["spend"]),
                    "add_to_cart": actions.get("add_to_cart", 0.0),
                    "purchases": actions.get("purchase", 0.0),
                    "purchase_value": values.get("purchase", 0.0),
                }
            )
        return rows
