"""Event schema v1: what travels on the events topic (JSON, key = variant id). See docs/events-v1.md.

Two kinds, because platforms restate numbers: additive events, counted once by ``event_id``, and
metric snapshots, which replace the previous value for (channel, external id, day, metric).
Every event names its schema; parsing dispatches on (schema, type), so a v2 can be added beside v1
without breaking v1 producers.
"""

from __future__ import annotations

import functools
import hashlib
import operator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

SCHEMA_V1 = "autoplay.event.v1"
SCHEMAS = (SCHEMA_V1,)
ADDITIVE_TYPES = ("impression", "click", "product_view", "add_to_cart", "purchase", "video_view")
METRICS = ("impressions", "clicks", "spend", "add_to_cart", "purchases", "purchase_value")
FUTURE_TOLERANCE = timedelta(days=1)
#: Bounds beyond which a figure is a bug or an attack, not a number to learn from.
MAX_COUNT = 10**9
MAX_VALUE = 1e10
EARLIEST_DAY = date(2000, 1, 1)
#: A message larger than this is dead-lettered without being parsed.
MAX_MESSAGE_BYTES = 1 << 20


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    schema_: Literal["autoplay.event.v1"] = Field(default=SCHEMA_V1, alias="schema")
    variant_id: str = Field(min_length=1, max_length=64)
    channel: str = Field(min_length=1, max_length=32)
    external_id: str | None = Field(default=None, max_length=128)


class AdditiveEvent(_Event):
    """Something that happened: impressions, a click, a product page view, an add to cart, a purchase."""

    type: Literal["impression", "click", "product_view", "add_to_cart", "purchase", "video_view"]
    event_id: str = Field(min_length=1, max_length=128)
    occurred_at: AwareDatetime
    count: int = Field(default=1, ge=0, le=MAX_COUNT)
    value: float = Field(default=0.0, ge=0, le=MAX_VALUE)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _money_has_a_currency(self) -> AdditiveEvent:
        if self.value > 0 and self.currency is None:
            raise ValueError("currency is required when value is set")
        return self


class MetricSnapshot(_Event):
    """A platform's current figure for one metric of one ad on one day; the newest ``as_of`` wins."""

    type: Literal["metric_snapshot"]
    external_id: str = Field(min_length=1, max_length=128)
    day: date
    metric: Literal["impressions", "clicks", "spend", "add_to_cart", "purchases", "purchase_value"]
    value: float = Field(ge=0, le=MAX_VALUE)
    as_of: AwareDatetime


def _tag(value: object) -> str:
    if isinstance(value, dict):
        return f"{value.get('schema', SCHEMA_V1)}:{value.get('type')}"
    return f"{getattr(value, 'schema_', SCHEMA_V1)}:{getattr(value, 'type', None)}"


Event = Annotated[
    Annotated[MetricSnapshot, Tag(f"{SCHEMA_V1}:metric_snapshot")]
    | Annotated[AdditiveEvent, Tag(f"{SCHEMA_V1}:impression")]
    | Annotated[AdditiveEvent, Tag(f"{SCHEMA_V1}:click")]
    | Annotated[AdditiveEvent, Tag(f"{SCHEMA_V1}:product_view")]
    | Annotated[AdditiveEvent, Tag(f"{SCHEMA_V1}:add_to_cart")]
    | Annotated[AdditiveEvent, Tag(f"{SCHEMA_V1}:purchase")]
    | Annotated[AdditiveEvent, Tag(f"{SCHEMA_V1}:video_view")],
    Discriminator(_tag),
]
_adapter: TypeAdapter = TypeAdapter(Event)

#: Dead-letter reasons, stable strings to group and alert on.
REASONS = (
    "malformed_json",
    "unknown_schema",
    "unknown_type",
    "missing_field",
    "mistyped_field",
    "negative_value",
    "invalid_field",
    "unknown_variant",
    "future_timestamp",
    "tombstone",
    "oversized",
    "too_deep",
    "out_of_range",
    "impossible_value",
)


class BadEvent(ValueError):
    """An event that cannot be stored; ``reason`` is one of ``REASONS``, the message says where."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# The fast path. Ingestion validates every message; pydantic costs ~7 µs an event, msgspec ~0.3 µs. These
# structs mirror the models above field for field and are at least as strict, so anything they accept the
# models accept too (tests/connectors/test_event_schema.py checks that on generated events). Whatever they
# refuse goes to the models, which either accept it (lax cases such as a count sent as "3") or say why not.
_Str32 = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
_Str64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Str128 = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Aware = Annotated[datetime, msgspec.Meta(tz=True)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0, le=MAX_VALUE)]


class _FastAdditive(msgspec.Struct, forbid_unknown_fields=True, tag_field="type"):
    variant_id: _Str64
    channel: _Str32
    event_id: _Str128
    occurred_at: _Aware
    schema: Literal["autoplay.event.v1"] = SCHEMA_V1
    external_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    count: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)] = 1
    value: _NonNegative = 0.0
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None

    @property
    def type(self) -> str:
        return self.__struct_config__.tag

    def __post_init__(self) -> None:
        if self.value > 0 and self.currency is None:
            raise ValueError("currency is required when value is set")


class _FastSnapshot(msgspec.Struct, forbid_unknown_fields=True, tag_field="type", tag="metric_snapshot"):
    variant_id: _Str64
    channel: _Str32
    external_id: _Str128
    day: date
    metric: Literal["impressions", "clicks", "spend", "add_to_cart", "purchases", "purchase_value"]
    value: _NonNegative
    as_of: _Aware
    schema: Literal["autoplay.event.v1"] = SCHEMA_V1

    type = "metric_snapshot"


_fast_types = tuple(type(f"_Fast_{t}", (_FastAdditive,), {}, tag=t) for t in ADDITIVE_TYPES)
_fast_decoder = msgspec.json.Decoder(functools.reduce(operator.or_, _fast_types, _FastSnapshot))


def is_snapshot(event: object) -> bool:
    return event.type == "metric_snapshot"


def parse_event(raw: bytes | None) -> AdditiveEvent | MetricSnapshot:
    """Validate one message's bytes; the result has the attributes of ``AdditiveEvent`` or ``MetricSnapshot``.

    Whatever the bytes are, the answer is an event or a BadEvent with its reason: never another exception
    (a tombstone, a huge or deeply nested message, numbers out of range, invalid UTF-8)."""
    if raw is None:
        raise BadEvent("tombstone", "a message with no value (a tombstone)")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise BadEvent("oversized", f"{len(raw)} bytes; events are at most {MAX_MESSAGE_BYTES}")
    try:
        return _fast_decoder.decode(raw)
    except (msgspec.DecodeError, ValueError, RecursionError):
        pass
    try:
        return _adapter.validate_json(raw)
    except ValidationError as exc:
        raise _classify(exc) from None
    except RecursionError:
        raise BadEvent("too_deep", "the JSON is nested too deep") from None
    except Exception as exc:  # the last line of defence: a message never stops ingestion
        raise BadEvent("invalid_field", f"{type(exc).__name__}: {exc}"[:300]) from None


def _classify(exc: ValidationError) -> BadEvent:
    first = exc.errors(include_url=False)[0]
    kind, where = first["type"], ".".join(str(p) for p in first["loc"][1:]) or "event"
    if kind == "recursion_loop" or "recursion" in first["msg"].lower():
        return BadEvent("too_deep", f"{where}: {first['msg']}")
    if kind == "json_invalid":
        return BadEvent("malformed_json", first["msg"])
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        if not isinstance(first.get("input"), dict):
            return BadEvent("malformed_json", "an event must be a JSON object")
        if "type" not in first["input"]:
            return BadEvent("missing_field", "type is required")
        tag = str(first.get("ctx", {}).get("tag", ""))
        schema = tag.split(":", 1)[0]
        if tag and schema not in SCHEMAS:
            return BadEvent("unknown_schema", f"schema {schema!r} is not one of {list(SCHEMAS)}")
        return BadEvent("unknown_type", f"type {tag.split(':', 1)[-1]!r} is not a known event type")
    if kind == "missing":
        return BadEvent("missing_field", f"{where} is required")
    if kind in ("greater_than_equal", "greater_than"):
        return BadEvent("negative_value", f"{where}: {first['msg']}")
    if kind in ("less_than_equal", "less_than", "finite_number"):
        return BadEvent("out_of_range", f"{where}: {first['msg']}")
    if kind.endswith(("_type", "_parsing")) or kind in ("timezone_aware", "literal_error", "string_too_long"):
        return BadEvent("mistyped_field", f"{where}: {first['msg']}")
    return BadEvent("invalid_field", f"{where}: {first['msg'].removeprefix('Value error, ')}")


def check_time(event: AdditiveEvent | MetricSnapshot, now: datetime) -> None:
    """Events from the future (beyond a day of clock skew) are refused; late ones are fine."""
    limit = now + FUTURE_TOLERANCE
    if not is_snapshot(event):
        if event.occurred_at > limit:
            raise BadEvent("future_timestamp", f"occurred_at {event.occurred_at.isoformat()} is in the future")
    elif event.as_of > limit or event.day > limit.date():
        raise BadEvent("future_timestamp", f"day {event.day} / as_of {event.as_of.isoformat()} is in the future")
    elif event.day < EARLIEST_DAY:
        raise BadEvent("out_of_range", f"day {event.day} is before {EARLIEST_DAY}")


def encode(event: AdditiveEvent | MetricSnapshot) -> bytes:
    """The event's JSON; a model's or a fast-path struct's alike."""
    if isinstance(event, msgspec.Struct):
        return msgspec.json.encode(event)
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
