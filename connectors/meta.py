"""Meta Marketing API connector on the official facebook-business SDK.

Production and sandbox take the same code path: only ``graph_url`` and the token differ. The SDK has
no idempotency key, so every create looks up by name first (names carry brief and variant id).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from facebook_business.adobjects.ad import Ad
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adset import AdSet
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from connectors.secrets import register_secret

DEFAULT_GRAPH_URL = "https://graph.facebook.com"


class MetaError(RuntimeError):
    """A Marketing API call failed; the message names the request and Meta's error, never the token."""


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
    ) -> None:
        register_secret(access_token)
        session = FacebookSession(access_token=access_token, timeout=timeout)
        session.GRAPH = graph_url.rstrip("/")
        # The SDK sends the token as a query parameter, where HTTP libraries log it; send it as a header.
        session.requests.params.pop("access_token", None)
        session.requests.headers["Authorization"] = f"Bearer {access_token}"
        self._api = FacebookAdsApi(session, api_version=api_version)
        self.account_id = account_id if account_id.startswith("act_") else f"act_{account_id}"
        self.page_id = page_id
        self.campaign_id = campaign_id
        self._account = AdAccount(self.account_id, api=self._api)

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FacebookRequestError as err:
            raise MetaError(
                f"Meta {what} failed: HTTP {err.http_status()} code {err.api_error_code()}: {err.api_error_message()}"
            ) from None

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
        found = list(
            self._call(f"lookup of {edge} named {name}", getter, fields=["id", "name", "status"], params=lookup)
        )
        if found:
            return dict(found[0])
        created = self._call(what, creator, params={"name": name, **params})
        return {"id": created["id"], "status": params.get("status")}

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
