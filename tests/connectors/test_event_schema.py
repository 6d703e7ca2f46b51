"""The fast msgspec decoder must never accept an event the pydantic models refuse, and must read it the same."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.events import _adapter, _fast_decoder, parse_event

_text = st.one_of(st.text(max_size=3), st.text(min_size=60, max_size=140), st.just(""), st.integers(), st.none())
_times = st.sampled_from(
    ["2026-11-20T10:00:00Z", "2026-11-20T10:00:00+02:00", "2026-11-20T10:00:00", "2026-11-20", "yesterday", 1763600000]
)
_numbers = st.one_of(st.integers(-3, 10**12), st.floats(allow_nan=False), st.sampled_from(["3", "x", None, True]))
_fields = {
    "schema": st.sampled_from(["autoplay.event.v1", "autoplay.event.v2", 1]),
    "type": st.sampled_from(["click", "impression", "purchase", "metric_snapshot", "refund", 3]),
    "event_id": _text,
    "variant_id": _text,
    "channel": _text,
    "external_id": _text,
    "occurred_at": _times,
    "as_of": _times,
    "day": st.sampled_from(["2026-11-20", "2026-11-20T00:00:00Z", "20th", 5]),
    "metric": st.sampled_from(["clicks", "spend", "likes"]),
    "count": _numbers,
    "value": _numbers,
    "currency": st.sampled_from(["EUR", "eur", "EURO", None]),
    "surprise": st.just(1),
}


_VALID = [
    {"type": "purchase", "event_id": "e1", "variant_id": "v1", "channel": "shopify",
     "occurred_at": "2026-11-20T10:00:00Z", "count": 1, "value": 12.5, "currency": "EUR"},
    {"type": "metric_snapshot", "variant_id": "v1", "channel": "meta", "external_id": "ad1", "day": "2026-11-20",
     "metric": "clicks", "value": 4, "as_of": "2026-11-20T10:00:00Z"},
]  # fmt: skip


@st.composite
def events(draw):
    """A valid event with up to three fields replaced, added or dropped: near misses, where parsers differ."""
    event = dict(draw(st.sampled_from(_VALID)))
    for name in draw(st.lists(st.sampled_from(sorted(_fields)), max_size=3)):
        if draw(st.booleans()) and name in event:
            del event[name]
        else:
            event[name] = draw(_fields[name])
    return event


def _canonical(event) -> dict:
    return {k: getattr(event, k) for k in ("type", "variant_id", "channel", "external_id") if hasattr(event, k)} | {
        k: getattr(event, k)
        for k in ("event_id", "occurred_at", "count", "value", "currency", "day", "metric", "as_of")
        if hasattr(event, k)
    }


def test_fast_decoder_accepts_only_what_the_models_accept():
    accepted = []

    @settings(max_examples=1000, deadline=None)
    @given(events())
    def check(event):
        raw = json.dumps(event).encode()
        try:
            fast = _fast_decoder.decode(raw)
        except Exception:
            return  # refused by the fast path: the models decide, as parse_event does
        model = _adapter.validate_json(raw)  # raises if the fast path was laxer than the schema
        assert _canonical(fast) == _canonical(model)
        accepted.append(raw)

    check()
    assert len(accepted) > 100  # else the property compared nothing


def test_a_lax_but_valid_event_still_passes_through_the_models():
    raw = b'{"type":"click","event_id":"e1","variant_id":"v","channel":"c","count":"3",'
    raw += b'"occurred_at":"2026-01-01T00:00:00Z"}'
    assert parse_event(raw).count == 3
