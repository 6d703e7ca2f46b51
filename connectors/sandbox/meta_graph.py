"""Sandbox Meta Graph API: ad images, creatives, ad sets, ads, status/budget updates and ad insights.

Response shapes, ids, error bodies and cursor paging follow the Marketing API, so the official
facebook-business SDK runs against it unchanged. Behind it, a market (anything with
``simulate_day(ads)``) decides delivery when the sandbox clock advances (``POST /sandbox/advance``).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import time
from datetime import date, timedelta
from urllib.parse import urlencode

from connectors import url_tags
from connectors.http_server import HttpServer, Request

_PATH = re.compile(r"^/(v\d+\.\d+)/(.+)$")

#: Faults a test can inject: throttling (code 17, ad-account code 80004, with usage headers), a transient
#: 500, an HTML 502 from a proxy, a 200 whose body is not JSON, and a response that comes too late.
FAULTS = ("throttle", "account_throttle", "transient", "html_502", "non_json", "timeout")
#: Outcomes a test can arrange (``inject`` too): an ad whose name contains ``match`` is disapproved at
#: review; a video that fails encoding; an async insights report that fails.
OUTCOMES = ("disapprove", "video_error", "report_failed")
PLACEMENT_FIELDS = {
    "publisher_platforms": {"facebook", "instagram", "audience_network", "messenger"},
    "facebook_positions": {"feed", "story", "facebook_reels", "marketplace", "video_feeds", "right_hand_column"},
    "instagram_positions": {"stream", "story", "reels", "explore", "explore_home", "profile_feed"},
}


class GraphError(Exception):
    def __init__(self, message: str, code: int = 100, status: int = 400, kind: str = "OAuthException") -> None:
        super().__init__(message)
        self.body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "sandbox"}}
        self.status = status


def _act(account_id: str) -> str:
    return account_id if account_id.startswith("act_") else f"act_{account_id}"


class MetaGraphSandbox(HttpServer):
    """In-memory ad account(s) with a clock; ``market`` decides what each active ad delivers per day."""

    def __init__(
        self,
        market,
        access_token: str,
        account_id: str,
        campaign_id: str = "120000000000001",
        start_day: date = date(2026, 11, 1),
        page_size: int = 25,
        more_accounts: dict[str, str] | None = None,
        **kw,
    ) -> None:
        super().__init__(**kw)
        self.market = market
        self.access_token = access_token
        self.account = _act(account_id)
        self.campaign_id = campaign_id
        self.today = start_day
        self.page_size = page_size
        #: ad account -> its campaign; a catalog's briefs may sit in several accounts of one business
        self.accounts = {self.account: campaign_id} | {_act(a): c for a, c in (more_accounts or {}).items()}
        self._current_account = self.account
        self.objects: dict[str, dict] = {
            c: {"id": c, "type": "campaign", "name": "sandbox", "account_id": a[4:]} for a, c in self.accounts.items()
        }
        self.requests: list[dict] = []  # every Graph request (method, path, params without the token), in order
        self.images: dict[str, dict] = {}
        self.daily: dict[tuple[str, str], dict] = {}  # (ad_id, day) -> delivered metrics
        self._ids = itertools.count(120000000000100)
        self.faults: list[dict] = []
        self.slow_response_s = 3.0
        self.latency_s = 0.0  # every Graph answer comes this late, after the work is done
        self.video_chunk_bytes = 1 << 20
        self.uploads: dict[str, dict] = {}  # upload session -> {"video_id", "size", "data"}
        self.reports: dict[str, dict] = {}
        self.on_day: list = []  # listeners called with (day, delivered rows with url_tags) as days pass
        self.last_windows: list[str] = []
        self.review_reads = 1  # reads of an ad before its review completes (a day passing completes it too)

    def add_account(self, account_id: str, campaign_id: str) -> None:
        """Another ad account of the business, with its campaign."""
        account = _act(account_id)
        self.accounts[account] = campaign_id
        self.objects[campaign_id] = {
            "id": campaign_id,
            "type": "campaign",
            "name": "sandbox",
            "account_id": account[4:],
        }

    # -- faults tests inject ---------------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, match: str = "", method: str = "", regain_minutes: int = 0) -> None:
        """Make the next ``times`` Graph requests whose path contains ``match`` (and, if given, with this
        HTTP method) fail as ``kind``: one of FAULTS."""
        if kind not in FAULTS + OUTCOMES:
            raise ValueError(f"unknown fault {kind!r}; choose one of {sorted(FAULTS + OUTCOMES)}")
        with self.lock:
            self.faults.append({"kind": kind, "times": times, "match": match, "method": method,
                                "regain_minutes": regain_minutes})  # fmt: skip

    def _take_outcome(self, kind: str, name: str) -> bool:
        for fault in self.faults:
            if fault["kind"] == kind and fault["times"] > 0 and fault["match"] in name:
                fault["times"] -= 1
                return True
        return False

    def restate(self, day: str, purchases: int = 2, value_each: float = 40.0) -> None:
        """Late conversions: Meta restates a past day's figures (more purchases) for every ad that delivered."""
        with self.lock:
            for (_ad, d), row in self.daily.items():
                if d == day:
                    row["purchases"] += purchases
                    row["add_to_cart"] += purchases
                    row["purchase_value"] = round(row["purchase_value"] + purchases * value_each, 2)

    def _take_fault(self, request: Request) -> dict | None:
        for fault in self.faults:
            if fault["kind"] not in FAULTS:
                continue
            if fault["times"] > 0 and fault["match"] in request.path and fault["method"] in ("", request.method):
                fault["times"] -= 1
                return fault
        return None

    def _fault_response(self, fault: dict) -> tuple[int, dict, object]:
        kind = fault["kind"]
        regain = fault["regain_minutes"]
        use_case = {"type": "ads_management", "call_count": 100, "total_cputime": 40, "total_time": 60}
        usage = {
            "x-business-use-case-usage": json.dumps(
                {"1000000000001": [{**use_case, "estimated_time_to_regain_access": regain}]}
            ),
            "x-ad-account-usage": json.dumps({"acc_id_util_pct": 100, "reset_time_duration": regain * 60}),
        }
        if kind == "throttle":
            return 400, usage, GraphError("(#17) User request limit reached", code=17, kind="OAuthException").body
        if kind == "account_throttle":
            return 400, usage, GraphError("There have been too many calls to this ad-account", code=80004).body
        if kind == "transient":
            body = GraphError("An unexpected error has occurred. Please retry your request later.", code=2).body
            body["error"]["is_transient"] = True
            return 500, {}, body
        if kind == "html_502":
            return 502, {"Content-Type": "text/html"}, b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        if kind == "non_json":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Service temporarily busy</body></html>"
        raise AssertionError(kind)

    # -- routing -------------------------------------------------------------------------------
    def handle(self, request: Request) -> tuple[int, dict, object]:
        if not request.path.startswith("/sandbox/"):
            with self.lock:
                fault = self._take_fault(request)
            if fault is not None and fault["kind"] == "timeout":
                time.sleep(fault.get("delay_s", self.slow_response_s))  # answered, but after the client gave up
            elif fault is not None:
                return self._fault_response(fault)
        try:
            with self.lock:
                if request.path.startswith("/sandbox/"):
                    return 200, {}, self._control(request)
                self.requests.append(
                    {"method": request.method, "path": request.path,
                     "params": {k: v for k, v in request.params.items() if k != "access_token"}}
                )  # fmt: skip
                match = _PATH.match(request.path)
                if not match:
                    raise GraphError(f"Unknown path components: {request.path}", code=2500)
                if self._token(request) != self.access_token:
                    raise GraphError("Invalid OAuth access token - Cannot parse access token", code=190)
                answer = self._graph(request, match.group(2))
        except GraphError as err:
            return err.status, {}, err.body
        if self.latency_s:
            time.sleep(self.latency_s)  # done, but answered late: a client that dies now never learns the id
        return 200, {"x-ad-account-usage": json.dumps({"acc_id_util_pct": 1})}, answer

    @staticmethod
    def _token(request: Request) -> str | None:
        """The token from ``Authorization: OAuth|Bearer ...`` or, as the Graph API also allows, the query."""
        scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
        if scheme in ("OAuth", "Bearer") and value:
            return value
        return request.params.get("access_token")

    def _graph(self, request: Request, path: str) -> object:
        parts = path.strip("/").split("/")
        if parts[0] in self.accounts and len(parts) == 2:
            edge = parts[1]
            self._current_account = parts[0]
            if request.method == "POST":
                return {
                    "adimages": self._create_image,
                    "advideos": self._video_upload,
                    "adcreatives": self._create_creative,
                    "adsets": self._create_adset,
                    "ads": self._create_ad,
                    "insights": self._start_report,
                }.get(edge, self._unsupported)(request)
            if edge == "insights":
                return self._page(request, self._insight_rows(request.params))
            if edge == "adimages":
                wanted = json.loads(request.params.get("hashes") or "[]")
                return self._page(request, [self.images[h] for h in wanted if h in self.images])
            kinds = {"adcreatives": "creative", "adsets": "adset", "ads": "ad", "advideos": "video"}
            if edge in kinds:
                return self._list(request, kinds[edge])
        if len(parts) == 2 and parts[1] == "insights" and parts[0] in self.reports:
            return self._report_rows(request, parts[0])
        if len(parts) == 1 and parts[0] in self.reports:
            return self._report_status(parts[0])
        if len(parts) == 1 and parts[0] in self.objects:
            obj = self.objects[parts[0]]
            if obj["type"] == "ad" and request.method == "GET":
                self._review(obj, read=True)
            if request.method == "POST":
                return self._update(obj, request)
            return self._fields(obj, request)
        raise GraphError(
            f"Unsupported {request.method.lower()} request. Object with ID '{parts[0]}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation",
            code=100,
        )

    def _unsupported(self, request: Request) -> object:
        raise GraphError(f"Unsupported post request: {request.path}", code=100)

    # -- creates -------------------------------------------------------------------------------
    def _new(self, kind: str, fields: dict) -> dict:
        obj_id = str(next(self._ids))
        obj = {"id": obj_id, "type": kind, "account_id": self._current_account[4:], **fields}
        self.objects[obj_id] = obj
        return obj

    @staticmethod
    def _require(request: Request, *names: str) -> None:
        for name in names:
            if not request.params.get(name):
                raise GraphError(f"(#100) The parameter {name} is required", code=100)

    def _create_image(self, request: Request) -> object:
        self._require(request, "bytes")
        try:
            data = base64.b64decode(request.params["bytes"], validate=True)
        except ValueError:
            raise GraphError("(#100) Invalid image bytes", code=100) from None
        if not data.startswith((b"\x89PNG", b"\xff\xd8")):
            raise GraphError("(#100) Image format not supported", code=100)
        image_hash = hashlib.md5(data).hexdigest()
        name = request.params.get("name") or f"{image_hash}.png"
        self.images[image_hash] = {"hash": image_hash, "name": name, "bytes": len(data)}
        url = f"{self.url}/sandbox/images/{image_hash}"
        return {"images": {name: {"hash": image_hash, "url": url}}}

    def _create_creative(self, request: Request) -> object:
        self._require(request, "name", "object_story_spec")
        spec = json.loads(request.params["object_story_spec"])
        feed = json.loads(request.params.get("asset_feed_spec") or "null")
        hashes = [(spec.get("link_data") or {}).get("image_hash"), (spec.get("video_data") or {}).get("image_hash")]
        videos = [(spec.get("video_data") or {}).get("video_id")]
        if feed:
            items = feed.get("images", []) + feed.get("videos", [])
            hashes += [i.get("hash") or i.get("thumbnail_hash") for i in items]
            videos += [v["video_id"] for v in feed.get("videos", [])]
            labels = {a["name"] for i in items for a in i.get("adlabels", [])}
            for rule in feed.get("asset_customization_rules", []):
                label = (rule.get("image_label") or rule.get("video_label") or {}).get("name")
                if label not in labels:
                    raise GraphError(f"(#100) asset_customization_rules: label {label!r} names no asset", code=100)
                self._check_placements(rule.get("customization_spec") or {})
        elif not (spec.get("link_data") or spec.get("video_data")):
            raise GraphError("(#100) object_story_spec needs link_data or video_data (or an asset_feed_spec)", code=100)
        for image_hash in filter(None, hashes):
            if image_hash not in self.images:
                raise GraphError(f"(#100) Image with hash {image_hash} not found", code=100)
        for video_id in filter(None, videos):
            video = self.objects.get(str(video_id))
            if not video or video["type"] != "video" or video["status"]["video_status"] != "ready":
                raise GraphError(f"(#100) Video {video_id} does not exist or is not ready", code=100)
        return {
            "id": self._new(
                "creative",
                {
                    "name": request.params["name"],
                    "object_story_spec": spec,
                    "asset_feed_spec": feed,
                    "url_tags": request.params.get("url_tags", ""),
                    "degrees_of_freedom_spec": json.loads(request.params.get("degrees_of_freedom_spec") or "null"),
                    "status": "ACTIVE",
                },
            )["id"]
        }

    @staticmethod
    def _check_placements(spec: dict) -> None:
        for key, allowed in PLACEMENT_FIELDS.items():
            unknown = set(spec.get(key, [])) - allowed
            if unknown:
                raise GraphError(f"(#100) Invalid {key}: {sorted(unknown)}", code=100)

    def _video_upload(self, request: Request) -> object:
        """The three phases of a chunked upload: start (file_size), transfer (chunks), finish (title)."""
        phase = request.params.get("upload_phase")
        if phase == "start":
            size = int(request.params.get("file_size") or 0)
            if size <= 0:
                raise GraphError("(#100) file_size is required to start an upload", code=100)
            video = self._new("video", {"title": "", "status": {"video_status": "uploading"}, "_size": size})
            session = str(next(self._ids))
            self.uploads[session] = {"video_id": video["id"], "size": size, "data": bytearray()}
            return {"video_id": video["id"], "upload_session_id": session, "start_offset": "0",
                    "end_offset": str(min(size, self.video_chunk_bytes))}  # fmt: skip
        upload = self.uploads.get(request.params.get("upload_session_id", ""))
        if upload is None:
            raise GraphError("(#100) Invalid upload_session_id", code=100)
        if phase == "transfer":
            chunk = request.files.get("video_file_chunk", ("", b""))[1]
            if int(request.params.get("start_offset", -1)) != len(upload["data"]) or not chunk:
                raise GraphError("(#6001) There was a problem uploading your video file", code=6001)
            upload["data"] += chunk
            start = len(upload["data"])
            return {"start_offset": str(start), "end_offset": str(min(upload["size"], start + self.video_chunk_bytes))}
        if phase == "finish":
            video = self.objects[upload["video_id"]]
            if len(upload["data"]) != upload["size"]:
                raise GraphError("(#6001) The upload is incomplete", code=6001)
            video["title"] = request.params.get("title", "")
            failed = self._take_outcome("video_error", video["title"]) or not bytes(upload["data"][4:8]) == b"ftyp"
            video["status"] = {"video_status": "processing", "processing_progress": 0}
            video["_encode"] = "error" if failed else "ready"
            video["_reads"] = 0
            return {"success": True}
        raise GraphError(f"(#100) Unknown upload_phase {phase!r}", code=100)

    def _create_adset(self, request: Request) -> object:
        self._require(request, "name", "campaign_id", "daily_budget")
        if request.params["campaign_id"] not in self.objects:
            raise GraphError(f"(#100) Campaign {request.params['campaign_id']} does not exist", code=100)
        targeting = json.loads(request.params.get("targeting") or "{}")
        self._check_placements(targeting)
        return {
            "id": self._new(
                "adset",
                {
                    "name": request.params["name"],
                    "campaign_id": request.params["campaign_id"],
                    "daily_budget": str(int(request.params["daily_budget"])),
                    "status": request.params.get("status", "PAUSED"),
                    "targeting": targeting,
                },
            )["id"]
        }

    def _create_ad(self, request: Request) -> object:
        self._require(request, "name", "adset_id", "creative")
        creative_id = json.loads(request.params["creative"]).get("creative_id")
        adset = self.objects.get(request.params["adset_id"])
        if not adset or adset["type"] != "adset" or creative_id not in self.objects:
            raise GraphError("(#100) Invalid adset_id or creative", code=100)
        status = request.params.get("status", "PAUSED")
        return {
            "id": self._new(
                "ad",
                {
                    "name": request.params["name"],
                    "adset_id": adset["id"],
                    "creative": {"id": creative_id},
                    "status": status,
                    "effective_status": "PENDING_REVIEW",
                    "_reviewed": False,
                    "_reads": 0,
                    "_disapprove": self._take_outcome("disapprove", request.params["name"]),
                },
            )["id"]
        }

    def _review(self, ad: dict, read: bool = False) -> None:
        """Review completes after ``review_reads`` reads of the ad or when a day passes."""
        if ad.get("_reviewed", True):
            return
        ad["_reads"] += read
        if read and ad["_reads"] <= self.review_reads:
            return
        ad["_reviewed"] = True
        if ad["_disapprove"]:
            ad["effective_status"] = "DISAPPROVED"
            ad["issues_info"] = [{"level": "AD", "error_code": 1487389, "error_summary": "Ad not approved",
                                  "error_message": "Your ad shows a before-and-after image, which our policies "
                                  "do not allow (Personal Health).", "error_type": "SOFT_ERROR"}]  # fmt: skip
            ad["ad_review_feedback"] = {"global": {"Personal Health": "Before-and-after image"}}
        else:
            ad["effective_status"] = ad["status"]

    def _update(self, obj: dict, request: Request) -> object:
        if "status" in request.params:
            if request.params["status"] not in ("ACTIVE", "PAUSED", "ARCHIVED", "DELETED"):
                raise GraphError(f"(#100) Invalid status {request.params['status']}", code=100)
            obj["status"] = request.params["status"]
            if obj["type"] == "ad" and obj.get("_reviewed", True) and obj["effective_status"] != "DISAPPROVED":
                obj["effective_status"] = obj["status"]
        if "daily_budget" in request.params:
            if obj["type"] != "adset":
                raise GraphError("(#100) daily_budget can only be set on ad sets", code=100)
            obj["daily_budget"] = str(int(request.params["daily_budget"]))
        if "spend_cap" in request.params:
            if obj["type"] != "campaign":
                raise GraphError("(#100) spend_cap can only be set on campaigns", code=100)
            obj["spend_cap"] = str(int(request.params["spend_cap"]))
        return {"success": True}

    # -- reads ---------------------------------------------------------------------------------
    @staticmethod
    def _fields(obj: dict, request: Request) -> dict:
        wanted = [f for f in request.params.get("fields", "").split(",") if f]
        if obj["type"] == "video" and obj["status"]["video_status"] == "processing":
            obj["_reads"] += 1  # encoding advances as the client polls, as it does over time
            if obj["_reads"] >= 2:
                obj["status"] = {"video_status": obj["_encode"], "processing_progress": 100}
        public = {k: v for k, v in obj.items() if not k.startswith("_")}
        return {k: v for k, v in public.items() if k == "id" or not wanted or k in wanted}

    def _page(self, request: Request, rows: list[dict]) -> dict:
        offset = int(request.params.get("after") or 0)
        limit = int(request.params.get("limit") or self.page_size)
        page = {
            "data": rows[offset : offset + limit],
            "paging": {"cursors": {"before": str(offset), "after": str(offset + limit)}},
        }
        if offset + limit < len(rows):
            params = dict(request.params)
            params["after"] = str(offset + limit)
            page["paging"]["next"] = f"{self.url}{request.path}?{urlencode(params)}"
        return page

    def _list(self, request: Request, kind: str) -> dict:
        account = self._current_account[4:]
        rows = [o for o in self.objects.values() if o["type"] == kind and o.get("account_id") == account]
        for rule in json.loads(request.params.get("filtering") or "[]"):
            field, op, value = rule["field"], rule["operator"], rule["value"]
            if op == "EQUAL":
                rows = [o for o in rows if str(o.get(field)) == str(value)]
            elif op == "CONTAIN":
                rows = [o for o in rows if str(value) in str(o.get(field))]
            elif op == "IN":
                rows = [o for o in rows if o.get(field) in value]
            else:
                raise GraphError(f"(#100) Unsupported filtering operator {op}", code=100)
        for ad in rows if kind == "ad" else []:
            self._review(ad, read=True)
        return self._page(request, [self._fields(o, request) for o in rows])

    def _insight_rows(self, params: dict) -> list[dict]:
        if params.get("level", "ad") != "ad":
            raise GraphError("(#100) the sandbox serves level=ad insights only", code=100)
        time_range = json.loads(params.get("time_range") or "{}")
        since = date.fromisoformat(time_range.get("since", str(self.today - timedelta(days=1))))
        until = date.fromisoformat(time_range.get("until", str(self.today - timedelta(days=1))))
        windows = json.loads(params.get("action_attribution_windows") or '["7d_click", "1d_view"]')
        unknown = set(windows) - {"1d_click", "7d_click", "28d_click", "1d_view", "7d_view", "28d_view", "1d_ev"}
        if unknown:
            raise GraphError(f"(#100) action_attribution_windows: unknown windows {sorted(unknown)}", code=100)
        self.last_windows = windows
        wanted = None
        for rule in json.loads(params.get("filtering") or "[]"):
            if rule.get("field") != "ad.id" or rule.get("operator") != "IN":
                raise GraphError("(#100) the sandbox filters insights on ad.id IN only", code=100)
            wanted = {str(v) for v in rule["value"]}
        account = self._current_account[4:]
        rows = []
        for (ad_id, day), m in sorted(self.daily.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if not since <= date.fromisoformat(day) <= until:
                continue
            ad = self.objects[ad_id]
            if ad.get("account_id") != account or (wanted is not None and ad_id not in wanted):
                continue

            def action(kind: str, value: str) -> dict:  # per-window figures; clicks carry them all here
                return {"action_type": kind, "value": value, **{w: value if "click" in w else "0" for w in windows}}

            rows.append(
                {
                    "account_id": account,
                    "ad_id": ad_id,
                    "ad_name": ad["name"],
                    "adset_id": ad["adset_id"],
                    "date_start": day,
                    "date_stop": day,
                    "impressions": str(m["impressions"]),
                    "clicks": str(m["clicks"]),
                    "spend": f"{m['spend']:.2f}",
                    "actions": [action("add_to_cart", str(m["add_to_cart"])), action("purchase", str(m["purchases"]))],
                    "action_values": [action("purchase", f"{m['purchase_value']:.2f}")],
                }
            )
        return rows

    def _start_report(self, request: Request) -> dict:
        """An async insights job: its rows are computed now, its status completes over a few polls."""
        run_id = str(next(self._ids))
        failed = self._take_outcome("report_failed", "")
        rows = self._insight_rows(request.params)
        self.reports[run_id] = {"rows": rows, "polls": 0, "failed": failed, "windows": self.last_windows}
        return {"report_run_id": run_id}

    def _report_status(self, run_id: str) -> dict:
        report = self.reports[run_id]
        report["polls"] += 1
        done = report["polls"] >= 3
        status = "Job Failed" if done and report["failed"] else "Job Completed" if done else "Job Running"
        return {
            "id": run_id,
            "report_run_id": run_id,
            "async_status": status,
            "async_percent_completion": 100 if done else 50 * report["polls"],
        }

    def _report_rows(self, request: Request, run_id: str) -> dict:
        report = self.reports[run_id]
        if report["polls"] < 3 or report["failed"]:
            raise GraphError(f"(#100) Report {run_id} is not ready", code=100)
        return self._page(request, report["rows"])

    # -- sandbox control (not part of the Graph API) -------------------------------------------
    def _control(self, request: Request) -> object:
        action = request.path.removeprefix("/sandbox/")
        if action == "advance":
            return {"today": str(self.advance(int(request.params.get("days", 1))))}
        if action == "truth":
            return {
                ad["id"]: {"name": ad["name"], "true_ctr": self.market.true_ctr(ad.get("factors", {}))}
                for ad in self.objects.values()
                if ad["type"] == "ad"
            }
        if action == "clock":
            return {"today": str(self.today)}
        raise GraphError(f"unknown sandbox action {action}", code=100, status=404)

    def _campaign_capped(self, campaign_id: str) -> bool:
        """Meta stops a campaign's delivery once its lifetime spend reaches its spend_cap."""
        campaign = self.objects.get(campaign_id, {})
        cap = campaign.get("spend_cap")
        return cap is not None and campaign.get("_spent_cents", 0) >= int(cap)

    def advance(self, days: int = 1) -> date:
        """Let the market run ``days`` days (the sandbox's stand-in for time passing)."""
        with self.lock:
            for _ in range(days):
                self._deliver_one_day()
            return self.today

    def _deliver_one_day(self) -> None:
        live = []
        for ad in self.objects.values():
            if ad["type"] != "ad":
                continue
            self._review(ad)
            if ad["effective_status"] != "ACTIVE":
                continue
            adset = self.objects[ad["adset_id"]]
            if adset["status"] != "ACTIVE" or self._campaign_capped(adset["campaign_id"]):
                continue
            live.append(
                {"ad_id": ad["id"], "factors": self.factors_for(ad), "daily_budget": int(adset["daily_budget"]) / 100}
            )
        rows = self.market.simulate_day(live, self.today)
        for row in rows:
            self.daily[(row["ad_id"], str(self.today))] = row
            campaign = self.objects[self.objects[self.objects[row["ad_id"]]["adset_id"]]["campaign_id"]]
            campaign["_spent_cents"] = campaign.get("_spent_cents", 0) + int(round(row["spend"] * 100))
        for listener in self.on_day:  # e.g. the sandbox shop, whose orders follow the ads' purchases
            tagged = [{**r, "url_tags": self._creative_of(r["ad_id"]).get("url_tags", "")} for r in rows]
            listener(str(self.today), tagged)
        self.today += timedelta(days=1)

    def _creative_of(self, ad_id: str) -> dict:
        return self.objects[self.objects[ad_id]["creative"]["id"]]

    def factors_for(self, ad: dict) -> dict:
        """What the market sees of a creative: the factors carried in its url_tags (as on a real landing page)."""
        creative = self.objects[ad["creative"]["id"]]
        factors = url_tags.factors(creative.get("url_tags", ""))
        if "colour" in factors:
            factors["colour"] = "#" + factors["colour"].lstrip("#").upper()
        ad["factors"] = factors
        return factors
