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
from creative.vocabulary import ASPECTS, TEMPLATES

GOALS = Brief.model_fields["goal"].annotation.__args__  # type: ignore[union-attr]


@dataclass(frozen=True)
class FormView:
    """The values the form shows."""

    palette: list[str]
    goal: str
    daily_budget: str
    currency: str
    templates: list[str]
    aspects: list[str]
    autoplay_on: bool
    approval_needed: bool
    all_templates: tuple[str, ...] = tuple(TEMPLATES)
    all_aspects: tuple[str, ...] = tuple(ASPECTS)
    goals: tuple[str, ...] = GOALS


def form_view(data: Mapping) -> FormView:
    autoplay = data.get("autoplay") or {}
    return FormView(
        palette=[str(c) for c in data.get("palette", [])],
        goal=str(data.get("goal", "ctr")),
        daily_budget=str(data.get("daily_budget", "")),
        currency=str(data.get("currency", "USD")),
        templates=list(data.get("templates", [])),
        aspects=list(data.get("aspects", [])),
        autoplay_on=bool(autoplay.get("activate", False)),
        approval_needed=autoplay.get("approved_templates") is not None,
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
    autoplay = dict(new.get("autoplay") or {})
    autoplay["activate"] = bool(_one(form, "autoplay_on"))
    if _one(form, "approval_needed"):
        approved = autoplay.get("approved_templates")
        # turning the gate on approves what runs now; templates added later wait for approval
        current = [t for t in new["templates"] if t in (data.get("templates") or [])]
        autoplay["approved_templates"] = list(approved) if approved is not None else current
    else:
        autoplay.pop("approved_templates", None)
    new["autoplay"] = autoplay
    return new


def waiting_for_approval(brief: Brief) -> list[str]:
    """Template families the brief names that its approval gate has not let through yet."""
    gate = brief.autoplay.approved_templates
    return [] if gate is None else [t for t in brief.templates if t not in gate]


def decide_approval(data: Mapping, template: str, approve: bool) -> dict:
    """The YAML mapping with ``template`` approved (it may go live) or rejected (it leaves the brief)."""
    new = copy.deepcopy(dict(data))
    autoplay = dict(new.get("autoplay") or {})
    approved = list(autoplay.get("approved_templates") or [])
    if approve:
        autoplay["approved_templates"] = [*approved, template] if template not in approved else approved
    else:
        new["templates"] = [t for t in new.get("templates", []) if t != template]
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
