"""Event schema v1: what travels on the events topic (JSON, key = variant id).

Two kinds, because platforms restate numbers: additive events, counted once by ``event_id``, and
metric snapshots, which replace the previous value for (channel, external id, day, metric).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

SCHEMA_V1 = "autoplay.event.v1"
METRICS = ("impressions", "clicks", "spend", "add_to_cart", "purchases", "purchase_value")


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: Literal["autoplay.event.v1"] = Field(default=SCHEMA_V1, alias="schema")
    variant_id: str = Field(min_length=1)
    channel: str = Field(min_length=1)
    external_id: str | None = None


class AdditiveEvent(_Event):
    """Something that happened once: an impression, a click, an add to cart, a purchase, a video view."""

    type: Literal["impression", "click", "add_to_cart", "purchase", "video_view"]
    event_id: str = Field(min_length=1)
    occurred_at: datetime
    count: int = Field(default=1, ge=0)
    value: float = Field(default=0.0, ge=0)
    currency: str | None = None


class MetricSnapshot(_Event):
    """A platform's current figure for one metric of one ad on one day; newer ``as_of`` wins."""

    type: Literal["metric_snapshot"]
    day: date
    metric: Literal["impressions", "clicks", "spend", "add_to_cart", "purchases", "purchase_value"]
    value: float = Field(ge=0)
    as_of: datetime
    external_id: str = Field(min_length=1)


Event = Annotated[AdditiveEvent | MetricSnapshot, Field(discriminator="type")]
_adapter: TypeAdapter = TypeAdapter(Event)


class BadEvent(ValueError):
    """An event that cannot be stored; ``reason`` is short and stable enough to group dead letters by."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def parse_event(raw: bytes) -> AdditiveEvent | MetricSnapshot:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent("malformed_json", str(exc)) from None
    if not isinstance(data, dict):
        raise BadEvent("malformed_json", "an event must be a JSON object")
    try:
        return _adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        reason = "unknown_type" if first["type"] == "union_tag_invalid" else "invalid_field"
        raise BadEvent(reason, f"{where}: {first['msg']}") from None


def encode(event: AdditiveEvent | MetricSnapshot) -> bytes:
    return event.model_dump_json(by_alias=True).encode()


def snapshots_from_insights(
    rows: list[dict], variant_of: dict[str, str], channel: str = "meta", as_of: datetime | None = None
) -> list[MetricSnapshot]:
    """Turn daily insight rows (one per ad and day) into one snapshot per metric; unknown ads are skipped."""
    as_of = as_of or datetime.now(UTC)
    out = []
    for row in rows:
        variant = variant_of.get(row["ad_id"])
        if variant is None:
            continue
        for metric in METRICS:
            out.append(
                MetricSnapshot(
                    type="metric_snapshot",
                    variant_id=variant,
                    channel=channel,
                    external_id=row["ad_id"],
                    day=date.fromisoformat(row["day"]),
                    metric=metric,
                    value=float(row[metric]),
                    as_of=as_of,
                )
            )
    return out


def stable_event_id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]
