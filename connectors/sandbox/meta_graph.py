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

from connectors.sandbox.http import Request, SandboxServer

_PATH = re.compile(r"^/(v\d+\.\d+)/(.+)$")

#: Faults a test can inject: throttling (code 17, ad-account code 80004, with usage headers), a transient
#: 500, an HTML 502 from a proxy, a 200 whose body is not JSON, and a response that comes too late.
FAULTS = ("throttle", "account_throttle", "transient", "html_502", "non_json", "timeout")


class GraphError(Exception):
    def __init__(self, message: str, code: int = 100, status: int = 400, kind: str = "OAuthException") -> None:
        super().__init__(message)
        self.body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "sandbox"}}
        self.status = status


class MetaGraphSandbox(SandboxServer):
    """In-memory ad account(s) with a clock; ``market`` decides what each active ad delivers per day."""

    def __init__(
        self,
        market,
        access_token: str,
        account_id: str,
        campaign_id: str = "120000000000001",
        start_day: date = date(2026, 11, 1),
        page_size: int = 25,
        **kw,
    ) -> None:
        super().__init__(**kw)
        self.market = market
        self.access_token = access_token
        self.account = account_id if account_id.startswith("act_") else f"act_{account_id}"
        self.campaign_id = campaign_id
        self.today = start_day
        self.page_size = page_size
        self.objects: dict[str, dict] = {campaign_id: {"id": campaign_id, "type": "campaign", "name": "sandbox"}}
        self.images: dict[str, dict] = {}
        self.daily: dict[tuple[str, str], dict] = {}  # (ad_id, day) -> delivered metrics
        self._ids = itertools.count(120000000000100)
        self.faults: list[dict] = []
        self.slow_response_s = 3.0

    # -- faults tests inject ---------------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, match: str = "", method: str = "", regain_minutes: int = 0) -> None:
        """Make the next ``times`` Graph requests whose path contains ``match`` (and, if given, with this
        HTTP method) fail as ``kind``: one of FAULTS."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose one of {sorted(FAULTS)}")
        with self.lock:
            self.faults.append({"kind": kind, "times": times, "match": match, "method": method,
                                "regain_minutes": regain_minutes})  # fmt: skip

    def _take_fault(self, request: Request) -> dict | None:
        for fault in self.faults:
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
                match = _PATH.match(request.path)
                if not match:
                    raise GraphError(f"Unknown path components: {request.path}", code=2500)
                if self._token(request) != self.access_token:
                    raise GraphError("Invalid OAuth access token - Cannot parse access token", code=190)
                return (
                    200,
                    {"x-ad-account-usage": json.dumps({"acc_id_util_pct": 1})},
                    self._graph(request, match.group(2)),
                )
        except GraphError as err:
            return err.status, {}, err.body

    @staticmethod
    def _token(request: Request) -> str | None:
        """The token from ``Authorization: OAuth|Bearer ...`` or, as the Graph API also allows, the query."""
        scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
        if scheme in ("OAuth", "Bearer") and value:
            return value
        return request.params.get("access_token")

    def _graph(self, request: Request, path: str) -> object:
        parts = path.strip("/").split("/")
        if parts[0] == self.account and len(parts) == 2:
            edge = parts[1]
            if request.method == "POST":
                return {
                    "adimages": self._create_image,
                    "adcreatives": self._create_creative,
                    "adsets": self._create_adset,
                    "ads": self._create_ad,
                }.get(edge, self._unsupported)(request)
            if edge == "insights":
                return self._insights(request)
            kinds = {"adcreatives": "creative", "adsets": "adset", "ads": "ad"}
            if edge in kinds:
                return self._list(request, kinds[edge])
        if len(parts) == 1 and parts[0] in self.objects:
            obj = self.objects[parts[0]]
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
        obj = {"id": obj_id, "type": kind, "account_id": self.account[4:], **fields}
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
        image_hash = (spec.get("link_data") or {}).get("image_hash")
        if image_hash and image_hash not in self.images:
            raise GraphError(f"(#100) Image with hash {image_hash} not found", code=100)
        return {
            "id": self._new(
                "creative",
                {
                    "name": request.params["name"],
                    "object_story_spec": spec,
                    "url_tags": request.params.get("url_tags", ""),
                    "status": "ACTIVE",
                },
            )["id"]
        }

    def _create_adset(self, request: Request) -> object:
        self._require(request, "name", "campaign_id", "daily_budget")
        if request.params["campaign_id"] not in self.objects:
            raise GraphError(f"(#100) Campaign {request.params['campaign_id']} does not exist", code=100)
        return {
            "id": self._new(
                "adset",
                {
                    "name": request.params["name"],
                    "campaign_id": request.params["campaign_id"],
                    "daily_budget": str(int(request.params["daily_budget"])),
                    "status": request.params.get("status", "PAUSED"),
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
                    "effective_status": status,
                },
            )["id"]
        }

    def _update(self, obj: dict, request: Request) -> object:
        if "status" in request.params:
            if request.params["status"] not in ("ACTIVE", "PAUSED", "ARCHIVED", "DELETED"):
                raise GraphError(f"(#100) Invalid status {request.params['status']}", code=100)
            obj["status"] = request.params["status"]
            if obj["type"] == "ad":
                obj["effective_status"] = obj["status"]
        if "daily_budget" in request.params:
            if obj["type"] != "adset":
                raise GraphError("(#100) daily_budget can only be set on ad sets", code=100)
            obj["daily_budget"] = str(int(request.params["daily_budget"]))
        return {"success": True}

    # -- reads ---------------------------------------------------------------------------------
    @staticmethod
    def _fields(obj: dict, request: Request) -> dict:
        wanted = [f for f in request.params.get("fields", "").split(",") if f]
        return {k: v for k, v in obj.items() if k == "id" or not wanted or k in wanted}

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
        rows = [o for o in self.objects.values() if o["type"] == kind]
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
        return self._page(request, [self._fields(o, request) for o in rows])

    def _insights(self, request: Request) -> dict:
        if request.params.get("level", "ad") != "ad":
            raise GraphError("(#100) the sandbox serves level=ad insights only", code=100)
        time_range = json.loads(request.params.get("time_range") or "{}")
        since = date.fromisoformat(time_range.get("since", str(self.today - timedelta(days=1))))
        until = date.fromisoformat(time_range.get("until", str(self.today - timedelta(days=1))))
        rows = []
        for (ad_id, day), m in sorted(self.daily.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if not since <= date.fromisoformat(day) <= until:
                continue
            ad = self.objects[ad_id]
            rows.append(
                {
                    "account_id": self.account[4:],
                    "ad_id": ad_id,
                    "ad_name": ad["name"],
                    "adset_id": ad["adset_id"],
                    "date_start": day,
                    "date_stop": day,
                    "impressions": str(m["impressions"]),
                    "clicks": str(m["clicks"]),
                    "spend": f"{m['spend']:.2f}",
                    "actions": [
                        {"action_type": "add_to_cart", "value": str(m["add_to_cart"])},
                        {"action_type": "purchase", "value": str(m["purchases"])},
                    ],
                    "action_values": [{"action_type": "purchase", "value": f"{m['purchase_value']:.2f}"}],
                }
            )
        return self._page(request, rows)

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

    def advance(self, days: int = 1) -> date:
        """Let the market run ``days`` days (the sandbox's stand-in for time passing)."""
        with self.lock:
            for _ in range(days):
                self._deliver_one_day()
            return self.today

    def _deliver_one_day(self) -> None:
        live = []
        for ad in self.objects.values():
            if ad["type"] != "ad" or ad["status"] != "ACTIVE":
                continue
            adset = self.objects[ad["adset_id"]]
            if adset["status"] != "ACTIVE":
                continue
            live.append(
                {"ad_id": ad["id"], "factors": self.factors_for(ad), "daily_budget": int(adset["daily_budget"]) / 100}
            )
        for row in self.market.simulate_day(live):
            self.daily[(row["ad_id"], str(self.today))] = row
        self.today += timedelta(days=1)

    def factors_for(self, ad: dict) -> dict:
        """What the market sees of a creative: the factors carried in its url_tags (as on a real landing page)."""
        creative = self.objects[ad["creative"]["id"]]
        tags = dict(p.split("=", 1) for p in creative.get("url_tags", "").split("&") if "=" in p)
        factors = {k.removeprefix("ap_"): v for k, v in tags.items() if k.startswith("ap_")}
        if "colour" in factors:
            factors["colour"] = "#" + factors["colour"].lstrip("#").upper()
        ad["factors"] = factors
        return factors
