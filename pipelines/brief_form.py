"""The console's brief form: what it shows from a brief file's YAML, and the YAML a submitted form makes.

The YAML file stays the format: a save changes only the fields the form edits and keeps every other one
(channels' account ids, the product, tuning knobs) as the file has it. Validation is the brief's own
(``creative.brief.validate_brief``); its errors come back keyed by the field, to show beside it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass

from creative.brief import Brief
from creative.vocabulary import ASPECTS, ORIENTATIONS, TEMPLATES

GOALS = Brief.model_fields["goal"].annotation.__args__  # type: ignore[union-attr]
CHANNELS = ("meta", "shopify")
#: The channel settings a new brief's form asks for, as (section, field, label).
CHANNEL_FIELDS = (
    ("meta", "account_id", "Meta ad account id"),
    ("meta", "page_id", "Facebook page id"),
    ("meta", "campaign_id", "Meta campaign id"),
    ("shopify", "shop", "Shopify shop domain"),
    ("shopify", "product_id", "Shopify product id"),
)


@dataclass(frozen=True)
class FormView:
    """The values the form shows."""

    palette: list[str]
    goal: str
    daily_budget: str
    currency: str
    templates: list[str]
    aspects: list[str]
    channels: list[str]
    autoplay_on: bool
    approval_needed: bool
    all_templates: tuple[str, ...] = tuple(TEMPLATES)
    all_aspects: tuple[str, ...] = tuple(ASPECTS)
    all_channels: tuple[str, ...] = CHANNELS
    goals: tuple[str, ...] = GOALS
    orientations: tuple[str, ...] = ORIENTATIONS


def form_view(data: Mapping) -> FormView:
    autoplay = data.get("autoplay") or {}
    return FormView(
        palette=[str(c) for c in data.get("palette", [])],
        goal=str(data.get("goal", "ctr")),
        daily_budget=str(data.get("daily_budget", "")),
        currency=str(data.get("currency", "USD")),
        templates=list(data.get("templates", [])),
        aspects=list(data.get("aspects", [])),
        channels=list(data.get("channels", [])),
        autoplay_on=bool(autoplay.get("activate", False)),
        approval_needed=autoplay.get("approved_templates") is not None or autoplay.get("approved_colours") is not None,
    )


def apply_form(data: Mapping, form: Mapping[str, list[str]]) -> dict:
    """The brief's YAML mapping with the form's fields applied; ``form`` maps each field to all its values.

    Palette rows: ``palette_hex_i`` (typed) wins when it was changed from ``palette_was_i``, else
    ``palette_pick_i`` (the colour picker) when it was moved from what it showed. A row whose hex is cleared
    or whose ``palette_remove_i`` is ticked goes; the empty last row adds a colour only when one is typed
    there or picked (other than the white it shows). Numbers that do not parse stay text, so the brief's
    validation names them."""
    new = copy.deepcopy(dict(data))
    palette = []
    rows = sorted(
        {int(k.rsplit("_", 1)[1]) for k in form if k.startswith("palette_") and k.rsplit("_", 1)[1].isdigit()}
    )
    for i in rows:
        if _one(form, f"palette_remove_{i}"):
            continue
        typed, picked, was = (_one(form, f"palette_{k}_{i}").strip() for k in ("hex", "pick", "was"))
        shown = picker_value(was)
        if typed.upper() != was.upper():
            colour = typed  # typed over (or cleared: the row goes)
        elif picked and picked.upper() != shown.upper():
            colour = picked.upper()
        else:
            colour = was
        if colour:
            palette.append(colour)
    new["palette"] = palette
    new["goal"] = _one(form, "goal")
    new["daily_budget"] = _number(_one(form, "daily_budget"))
    new["currency"] = _one(form, "currency").strip().upper()
    new["templates"] = list(form.get("templates", []))
    new["aspects"] = list(form.get("aspects", []))
    new["channels"] = list(form.get("channels", []))
    autoplay = dict(new.get("autoplay") or {})
    autoplay["activate"] = bool(_one(form, "autoplay_on"))
    if _one(form, "approval_needed"):
        approved = autoplay.get("approved_templates")
        # turning the gate on approves what runs now; templates added later wait for approval
        current = [t for t in new["templates"] if t in (data.get("templates") or [])]
        autoplay["approved_templates"] = list(approved) if approved is not None else current
        autoplay["approved_colours"] = list(autoplay.get("approved_colours") or [])  # new colours wait
    else:
        autoplay.pop("approved_templates", None)
        autoplay.pop("approved_colours", None)
    new["autoplay"] = autoplay
    return new


def new_brief_data(brand_brief: Mapping | None, brand: str) -> dict:
    """What a new brief's form starts from: the brand's channel settings and choices from its latest brief
    (a brand keeps one ad account and one shop), an empty product and palette, autoplay off."""
    base = copy.deepcopy(dict(brand_brief or {}))
    data = {
        "brand": brand,
        "name": "",
        "product": {"model": "", "url": "", "message": "", "orientation": "auto"},
        "palette": [],
        "templates": base.get("templates", ["studio", "podium", "hero"]),
        "aspects": base.get("aspects", ["1:1", "4:5", "9:16"]),
        "goal": base.get("goal", "ctr"),
        "daily_budget": "",
        "currency": base.get("currency", "USD"),
        "channels": base.get("channels", list(CHANNELS)),
        "autoplay": {"activate": False},
    }
    if "meta" in base:  # the account and page; a campaign and its ad sets belong to one product's brief
        data["meta"] = {k: v for k, v in base["meta"].items() if k not in ("campaign_id", "ad_sets")}
    if "shopify" in base:  # the shop; the product is the new one
        data["shopify"] = {k: v for k, v in base["shopify"].items() if k != "product_id"}
    return data


def apply_new_form(data: Mapping, form: Mapping[str, list[str]], model: str) -> dict:
    """A new brief's YAML mapping: the edit form's fields, plus its name, brand, product and channel
    settings; ``model`` is the product model's file name beside the brief."""
    new = apply_form(data, form)
    new["name"] = _one(form, "name").strip()
    new["brand"] = _one(form, "brand").strip()
    new["product"] = {
        "model": model,
        "url": _one(form, "product_url").strip(),
        "message": _one(form, "product_message").strip(),
        "orientation": _one(form, "product_orientation") or "auto",
    }
    for section, field, _ in CHANNEL_FIELDS:
        if section in new["channels"]:
            new[section] = {**(new.get(section) or {}), field: _one(form, f"{section}_{field}").strip()}
    for section in CHANNELS:
        if section not in new["channels"]:
            new.pop(section, None)
    return new


def decide_approval(data: Mapping, kind: str, value: str, approve: bool) -> dict:
    """The YAML mapping with a waiting template family or new colour approved (it may go live) or rejected
    (a template leaves the brief; a colour is listed as rejected and never proposed again)."""
    new = copy.deepcopy(dict(data))
    autoplay = dict(new.get("autoplay") or {})
    if kind == "template" and approve:
        approved = list(autoplay.get("approved_templates") or [])
        autoplay["approved_templates"] = [*approved, value] if value not in approved else approved
    elif kind == "template":
        new["templates"] = [t for t in new.get("templates", []) if t != value]
    else:
        key = "approved_colours" if approve else "rejected_colours"
        listed = list(autoplay.get(key) or [])
        autoplay[key] = [*listed, value] if value not in listed else listed
    new["autoplay"] = autoplay
    return new


def picker_value(colour: str) -> str:
    """What a colour picker shows for a palette entry (an ``<input type=color>`` needs ``#rrggbb``)."""
    return colour if re.fullmatch(r"#[0-9A-Fa-f]{6}", colour or "") else "#FFFFFF"


def _one(form: Mapping[str, list[str]], key: str) -> str:
    values = form.get(key) or [""]
    return str(values[-1])


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text
