"""Meta Marketing API connector on the official facebook-business SDK.

Production and sandbox take the same code path: only ``graph_url`` and the token differ. The SDK has
no idempotency key, so every create looks up by name first (names carry brief and variant id).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import requests
from facebook_business.adobjects.ad import Ad
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adset import AdSet
from facebook_business.adobjects.advideo import AdVideo
from facebook_business.adobjects.campaign import Campaign
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from connectors.graph_http import BadGraphResponse, GraphTransport, classify, regain_seconds
from connectors.retry import Backoff, wait_until
from connectors.secrets import register_secret
from connectors.url_tags import url_tags
from creative.vocabulary import placement_of

log = logging.getLogger("autoplay.meta")


def _drop_sdk_deprecation_noise(record: logging.LogRecord) -> bool:
    """The SDK's chunked video uploader logs 'parent_id is being deprecated' on the root logger at every
    upload, though it is the SDK's own API that needs parent_id; the line tells nobody anything."""
    return not ("facebook_business" in record.pathname and "parent_id" in str(record.msg))


logging.getLogger().addFilter(_drop_sdk_deprecation_noise)

DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_VIDEO_URL = "https://graph-video.facebook.com"


class MetaError(RuntimeError):
    """A Marketing API call failed; the message names the request and Meta's error, never the token."""


class BudgetRefused(MetaError):
    """A budget outside (0, the brief's daily cap]: refused before any request, whichever path asked for it."""


class MetaThrottled(MetaError):
    """Meta throttles the account for longer than we are willing to wait; ``wait_s`` says how long."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


#: Where each aspect is native: vertical renders run in stories and reels, the others in feeds.
FEED_POSITIONS = {"facebook_positions": ["feed"], "instagram_positions": ["stream", "explore"]}
VERTICAL_POSITIONS = {"facebook_positions": ["story", "facebook_reels"], "instagram_positions": ["story", "reels"]}


def placements(aspect: str) -> dict:
    """The placements a render of ``aspect`` is native to, as Meta targeting fields."""
    return {
        "publisher_platforms": ["facebook", "instagram"],
        **(VERTICAL_POSITIONS if aspect == "9:16" else FEED_POSITIONS),
    }


@dataclass(frozen=True)
class Asset:
    """One native render for the placements of its aspect: a still, or a turntable video with its poster."""

    aspect: str
    image_path: Path
    video_path: Path | None = None

    @property
    def label(self) -> str:
        return f"{'video' if self.video_path else 'image'}_{self.aspect.replace(':', 'x')}"


@dataclass(frozen=True)
class CreativeToPublish:
    """What the loop asks Meta to run for one variant: its render (still, or turntable and poster) in
    its aspect, and optionally ``alternates`` in other aspects, each shown in the placements it fits."""

    variant_id: str
    brief: str
    image_path: Path
    link_url: str
    message: str
    factors: dict[str, str] = field(default_factory=dict)
    aspect: str = "1:1"
    video_path: Path | None = None
    alternates: tuple[Asset, ...] = ()

    @property
    def name(self) -> str:
        return f"autoplay|{self.brief}|{self.variant_id}"

    @property
    def assets(self) -> tuple[Asset, ...]:
        return (Asset(self.aspect, Path(self.image_path), self.video_path), *self.alternates)

    def targeting(self) -> dict:
        """Placements of every asset, merged: the ad runs only where one of its renders is native."""
        out: dict[str, list[str]] = {}
        for asset in self.assets:
            for key, values in placements(asset.aspect).items():
                out.setdefault(key, [])
                out[key] += [v for v in values if v not in out[key]]
        return out


@dataclass(frozen=True)
class MetaPublication:
    variant_id: str
    image_hash: str
    creative_id: str
    adset_id: str
    ad_id: str
    status: str
    video_id: str | None = None


@dataclass(frozen=True)
class AdReview:
    """An ad's standing in Meta's review; ``reason`` says why it cannot run, when it cannot."""

    ad_id: str
    variant_id: str | None
    effective_status: str
    reason: str | None

    @property
    def disapproved(self) -> bool:
        return self.effective_status == "DISAPPROVED"

    @classmethod
    def from_graph(cls, row: dict) -> AdReview:
        issues = [i.get("error_message") or i.get("error_summary") for i in row.get("issues_info") or []]
        feedback = [f"{k}: {v}" for scope in (row.get("ad_review_feedback") or {}).values() for k, v in scope.items()]
        reason = "; ".join(filter(None, issues + feedback)) or None
        return cls(row["id"], variant_from_name(row.get("name", "")), row["effective_status"], reason)


def variant_from_name(name: str) -> str | None:
    """The variant id in a name made by ``CreativeToPublish.name``, or None for ads that are not ours."""
    parts = name.split("|")
    return parts[2] if len(parts) == 3 and parts[0] == "autoplay" else None


def _video_url_for(graph_url: str) -> str:
    """Chunked uploads go to graph-video.facebook.com; anywhere else (a sandbox, a proxy) serves both."""
    return DEFAULT_VIDEO_URL if graph_url.rstrip("/") == DEFAULT_GRAPH_URL else graph_url


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
        graph_video_url: str | None = None,
        ad_sets: dict[str, str] | None = None,
        countries: list[str] | None = None,
        video_ready_timeout_s: float = 600.0,
        video_poll_s: float = 5.0,
        async_rows: int = 2000,
        report_poll_s: float = 5.0,
        report_timeout_s: float = 900.0,
        max_daily_budget_cents: int | None = None,
    ) -> None:
        register_secret(access_token)
        self.max_daily_budget_cents = max_daily_budget_cents
        session = FacebookSession(access_token=access_token, timeout=timeout)
        session.GRAPH = graph_url.rstrip("/")
        transport = GraphTransport(timeout, video_url=graph_video_url or _video_url_for(graph_url))
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
        self.ad_sets = dict(ad_sets or {})
        self.countries = list(countries or ["US"])
        self.video_ready_timeout_s = video_ready_timeout_s
        self.video_poll_s = video_poll_s
        self.async_rows = async_rows
        self.report_poll_s = report_poll_s
        self.report_timeout_s = report_timeout_s

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
        """Upload the renders, create creative, ad set and ad for one variant; reuses whatever exists already.

        The ad goes into the ad set the brief names for its placements (``ad_sets``: ``feed``/``vertical``)
        or, when it names none, into an ad set of its own, which lets the loop steer its budget.
        """
        self.check_budget(daily_budget_cents, f"ad set of {creative.variant_id}")
        status = "ACTIVE" if activate else "PAUSED"
        media = {asset.label: self._upload(creative.variant_id, asset) for asset in creative.assets}
        first = media[creative.assets[0].label]
        creative_id = self._find_or_create(
            "adcreatives",
            creative.name,
            f"creative create for {creative.variant_id}",
            {
                **self._creative_spec(creative, media),
                "url_tags": url_tags(creative.variant_id, "meta", creative.factors),
                # Meta's automatic enhancements (crops, filters, music, text variations) stay off: the product
                # is shown exactly as rendered.
                "degrees_of_freedom_spec": {
                    "creative_features_spec": {"standard_enhancements": {"enroll_status": "OPT_OUT"}}
                },
            },
        )["id"]
        group = placement_of(creative.aspect)
        adset_id = (
            self.ad_sets.get(group)
            or self._find_or_create(
                "adsets",
                creative.name,
                f"ad set create for {creative.variant_id}",
                {
                    "campaign_id": self.campaign_id,
                    "daily_budget": int(daily_budget_cents),
                    "billing_event": "IMPRESSIONS",
                    "optimization_goal": "LINK_CLICKS",
                    "status": status,
                    "targeting": {"geo_locations": {"countries": self.countries}, **creative.targeting()},
                },
            )["id"]
        )
        ad = self._find_or_create(
            "ads",
            creative.name,
            f"ad create for {creative.variant_id}",
            {"adset_id": adset_id, "creative": {"creative_id": creative_id}, "status": status},
        )
        return MetaPublication(
            creative.variant_id,
            first["image_hash"],
            creative_id,
            adset_id,
            ad["id"],
            ad["status"],
            first.get("video_id"),
        )

    def _upload(self, variant_id: str, asset: Asset) -> dict:
        """The image hash (and video id) of one asset, uploading only what the account does not have."""
        out = {"image_hash": self._image(variant_id, asset.image_path)}
        if asset.video_path is not None:
            out["video_id"] = self._video(variant_id, asset)
        return out

    def _image(self, variant_id: str, path: Path) -> str:
        data = Path(path).read_bytes()
        digest = hashlib.md5(data).hexdigest()  # Meta's image hash: the same bytes are never uploaded twice
        found = self._call(
            f"image lookup for {variant_id}",
            lambda: [dict(i) for i in self._account.get_ad_images(fields=["hash"], params={"hashes": [digest]})],
        )
        if found:
            return found[0]["hash"]
        image = self._call(
            f"image upload for {variant_id}",
            self._account.create_ad_image,
            params={"bytes": base64.b64encode(data).decode(), "name": f"{variant_id}{Path(path).suffix}"},
        )
        return image["hash"]

    def _video(self, variant_id: str, asset: Asset) -> str:
        """Chunked upload (the SDK's VideoUploader), then wait until Meta has encoded it; a video already
        uploaded under this title is reused."""
        title = f"autoplay-{variant_id}-{asset.aspect.replace(':', 'x')}.mp4"
        lookup = {"filtering": [{"field": "title", "operator": "EQUAL", "value": title}], "limit": 5}

        def find_or_upload() -> str:
            found = [dict(v) for v in self._account.get_ad_videos(fields=["id", "title"], params=lookup)]
            if found:
                return found[0]["id"]
            with tempfile.TemporaryDirectory() as tmp:  # the uploader titles a video by its file name
                named = Path(tmp) / title
                shutil.copy(asset.video_path, named)
                video = AdVideo(parent_id=self.account_id, api=self._api)
                video[AdVideo.Field.filepath] = str(named)
                video.remote_create()
                return video["id"]

        video_id = self._call(f"video upload for {variant_id}", find_or_upload)
        video = AdVideo(video_id, api=self._api)
        state = wait_until(
            lambda: self._call(f"encoding status of video {video_id}", video.api_get, fields=["status"])["status"],
            lambda s: s.get("video_status") in ("ready", "error"),
            self.video_ready_timeout_s,
            self.video_poll_s,
            self.backoff.sleep,
        )
        if state.get("video_status") != "ready":
            raise MetaError(f"Meta could not encode the video of {variant_id}: status {state}")
        return video_id

    def _creative_spec(self, creative: CreativeToPublish, media: dict[str, dict]) -> dict:
        """link_data for a still, video_data for a turntable; with renders in several aspects, an
        asset_feed_spec whose customization rules show each one only in the placements it is native to."""
        cta = {"type": "SHOP_NOW", "value": {"link": creative.link_url}}
        if len(creative.assets) == 1:
            asset, ids = creative.assets[0], media[creative.assets[0].label]
            if asset.video_path is None:
                data = {"image_hash": ids["image_hash"], "link": creative.link_url, "message": creative.message}
                return {"object_story_spec": {"page_id": self.page_id, "link_data": {**data, "call_to_action": cta}}}
            data = {"video_id": ids["video_id"], "image_hash": ids["image_hash"], "message": creative.message}
            return {"object_story_spec": {"page_id": self.page_id, "video_data": {**data, "call_to_action": cta}}}
        images, videos, rules = [], [], []
        for asset in creative.assets:
            ids, label = media[asset.label], {"name": asset.label}
            if asset.video_path is None:
                images.append({"hash": ids["image_hash"], "adlabels": [label]})
            else:
                videos.append({"video_id": ids["video_id"], "thumbnail_hash": ids["image_hash"], "adlabels": [label]})
            kind = "video_label" if asset.video_path else "image_label"
            rules.append({"customization_spec": placements(asset.aspect), kind: label})
        return {
            "object_story_spec": {"page_id": self.page_id},
            "asset_feed_spec": {
                **({"images": images} if images else {}),
                **({"videos": videos} if videos else {}),
                "bodies": [{"text": creative.message}],
                "link_urls": [{"website_url": creative.link_url}],
                "call_to_action_types": ["SHOP_NOW"],
                "ad_formats": ["AUTOMATIC_FORMAT"],
                "optimization_type": "PLACEMENT",
                "asset_customization_rules": rules,
            },
        }

    def set_ad_status(self, ad_id: str, active: bool) -> None:
        status = "ACTIVE" if active else "PAUSED"
        self._call(f"status update of ad {ad_id}", Ad(ad_id, api=self._api).api_update, params={"status": status})

    def set_campaign_spend_cap(self, cents: int) -> None:
        """The campaign's lifetime spend cap: Meta stops every ad set in it once reached, whatever their
        daily budgets say (the backstop behind the loop's own caps)."""
        if not isinstance(cents, int) or cents <= 0:
            raise BudgetRefused(f"campaign spend cap: {cents!r} cents is not a positive whole number of cents")
        self._call(
            f"spend cap update of campaign {self.campaign_id}",
            Campaign(self.campaign_id, api=self._api).api_update,
            params={"spend_cap": cents},
        )

    def check_budget(self, cents: int, what: str) -> None:
        """Every budget this client sends is a whole number of cents above 0 and within the brief's daily cap."""
        if not isinstance(cents, int) or isinstance(cents, bool) or cents <= 0:
            raise BudgetRefused(f"daily budget of {what}: {cents!r} cents is not a positive whole number of cents")
        if self.max_daily_budget_cents is not None and cents > self.max_daily_budget_cents:
            raise BudgetRefused(
                f"daily budget of {what}: {cents / 100:.2f} is above the brief's daily cap of "
                f"{self.max_daily_budget_cents / 100:.2f}"
            )

    def set_adset(self, adset_id: str, daily_budget_cents: int | None, active: bool) -> None:
        """An ad set's daily budget and whether it runs; ``None`` leaves the budget as it is (a pause)."""
        params = {"status": "ACTIVE" if active else "PAUSED"}
        if daily_budget_cents is not None:
            self.check_budget(int(daily_budget_cents), f"ad set {adset_id}")
            params["daily_budget"] = int(daily_budget_cents)
        self._call(f"update of ad set {adset_id}", AdSet(adset_id, api=self._api).api_update, params=params)

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

    def _rows(self, what: str, cursor) -> list[dict]:  # noqa: ANN001 (an SDK Cursor)
        """Every row of a cursor; a page that fails is fetched again, the rows already read are kept."""
        rows = []
        while True:
            try:
                rows.append(dict(self._call(what, next, cursor)))
            except StopIteration:
                return rows

    def review(self, ad_ids: list[str]) -> list[AdReview]:
        """Where each ad stands in Meta's review: its effective_status and, when it cannot run, why."""
        fields = ["id", "name", "effective_status", "issues_info", "ad_review_feedback"]
        out = []
        for start in range(0, len(ad_ids), 50):
            lookup = {
                "filtering": [{"field": "id", "operator": "IN", "value": ad_ids[start : start + 50]}],
                "limit": 50,
            }
            cursor = self._call("review status read", self._account.get_ads, fields=fields, params=lookup)
            out += [AdReview.from_graph(row) for row in self._rows("review status paging", cursor)]
        return out

    def insights(
        self,
        since: date,
        until: date,
        attribution_windows: list[str] | tuple[str, ...] = ("7d_click", "1d_view"),
        ad_ids: list[str] | None = None,
    ) -> list[dict]:
        """Ad-level daily insights, all pages, with Meta's string numbers turned into numbers.

        Counted under the brief's attribution windows. ``ad_ids`` limits the read to these ads (one brief's;
        the account may hold other briefs'). When the answer may be large (ads x days above ``async_rows``)
        it is read through an async report job, as Meta asks for big reads.
        """
        params = {
            "level": "ad",
            "time_increment": 1,
            "limit": 500,
            "time_range": {"since": since.isoformat(), "until": until.isoformat()},
            "action_attribution_windows": list(attribution_windows),
        }
        if ad_ids is not None:
            params["filtering"] = [{"field": "ad.id", "operator": "IN", "value": list(ad_ids)}]
        expected_ads = len(ad_ids or ())
        fields = ["ad_id", "ad_name", "adset_id", "impressions", "clicks", "spend", "actions", "action_values"]
        if expected_ads * ((until - since).days + 1) > self.async_rows:
            raw = self._report_rows(fields, params)
        else:
            cursor = self._call("insights read", self._account.get_insights, fields=fields, params=params)
            raw = self._rows("insights paging", cursor)
        rows = []
        for row in raw:
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

    def _report_rows(self, fields: list[str], params: dict) -> list[dict]:
        """An async insights report: start the job, poll it until Meta has finished it, read its pages."""
        run = self._call(
            "insights report start", self._account.get_insights, fields=fields, params=params, is_async=True
        )

        def read() -> dict:
            job = self._call(f"insights report {run['id']} status", run.api_get,
                             fields=["async_status", "async_percent_completion"])  # fmt: skip
            log.info(
                "insights report %s: %s, %s%%", run["id"], job["async_status"], job.get("async_percent_completion")
            )
            return job

        done = ("Job Completed", "Job Failed", "Job Skipped")
        job = wait_until(read, lambda j: j["async_status"] in done, self.report_timeout_s, self.report_poll_s,
                         self.backoff.sleep)  # fmt: skip
        if job["async_status"] != "Job Completed":
            raise MetaError(f"Meta insights report {run['id']} ended as {job['async_status']!r}")
        cursor = self._call(f"insights report {run['id']} read", run.get_insights, params={"limit": 500})
        return self._rows(f"insights report {run['id']} paging", cursor)
