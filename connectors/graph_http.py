"""HTTP under the facebook-business SDK, and what to do when the Graph API says no.

The SDK sends through ``session.requests`` (a requests.Session) and trusts what comes back: a 200 or an
HTML 502 whose body is not JSON counts as a success there. ``GraphTransport`` is mounted on that session
so every request has a timeout and a body that is not JSON is an error. ``Backoff`` and ``classify``
decide which errors are worth another attempt and how long to wait: throttling codes and the usage
headers, with jitter; transient errors and timeouts.
"""

from __future__ import annotations

import json

import requests
from requests.adapters import HTTPAdapter

#: Graph API throttling: app (4), user (17), page (32), API (613) and the ads-management limits.
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})


#: The SDK sends chunked video uploads here whatever the session's GRAPH says.
VIDEO_HOST = "https://graph-video.facebook.com"


class BadGraphResponse(requests.RequestException):
    """The Graph API answered with something that is not a Graph API answer (an HTML error page)."""


class GraphTransport(HTTPAdapter):
    """A requests adapter: a default timeout on every request; non-JSON bodies raise BadGraphResponse."""

    def __init__(self, timeout: float, video_url: str = VIDEO_HOST) -> None:
        super().__init__()
        self.timeout = timeout
        self.video_url = video_url.rstrip("/")

    def send(self, request, **kwargs):  # noqa: ANN001, ANN201 (requests' signature)
        if self.video_url != VIDEO_HOST and request.url.startswith(VIDEO_HOST + "/"):
            request.url = self.video_url + request.url[len(VIDEO_HOST) :]  # the SDK hard-codes the video host
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        response = super().send(request, **kwargs)
        try:
            response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise BadGraphResponse(f"HTTP {response.status_code} with a non-JSON body ({kind})") from None
        return response


def regain_seconds(headers: dict | None) -> float:
    """How long the usage headers say to wait before the account may call again (0 when they say nothing)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    wait = 0.0
    try:
        for entries in json.loads(headers.get("x-business-use-case-usage") or "{}").values():
            for entry in entries:
                wait = max(wait, 60.0 * float(entry.get("estimated_time_to_regain_access") or 0))
        account = json.loads(headers.get("x-ad-account-usage") or "{}")
        wait = max(wait, float(account.get("reset_time_duration") or 0))
    except (ValueError, AttributeError, TypeError):
        pass  # malformed usage headers must not turn a retry into a crash
    return wait


def classify(code: int | None, http_status: int | None, transient_flag: bool = False) -> str | None:
    """``throttle``, ``transient`` or None (do not retry: the request itself is wrong)."""
    if code in THROTTLE_CODES or http_status == 429:
        return "throttle"
    if transient_flag or code in TRANSIENT_CODES or (http_status or 0) >= 500:
        return "transient"
    return None
