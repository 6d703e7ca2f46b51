"""Where a brief stands, and pausing it: read from the ledger alone (works with nothing running), shared by
`autoplay status`/`pause` and the console."""

from __future__ import annotations

import pandas as pd

from connectors.ledger import ALL_BRIEFS, MODEL_3D_CHANNEL, Ledger
from creative.brief import Brief
from pipelines.settings import Settings


def brief_status(ledger: Ledger, name: str) -> dict:
    """One brief of the `status --json` document: keys exactly as the README documents them."""
    spec = ledger.brief_spec(name) or {}
    days = ledger.days(name)
    ads = []
    variants = ledger.variants(name).set_index("variant_id")
    for channel in ("meta", "shopify"):
        for p in ledger.publications(name, channel).itertuples():
            cents = p.daily_budget_cents
            ads.append(
                {
                    "variant_id": p.variant_id,
                    "channel": channel,
                    "kind": variants.loc[p.variant_id, "kind"] if p.variant_id in variants.index else "still",
                    "status": p.status,
                    "daily_budget": round(float(cents) / 100, 2) if channel == "meta" and pd.notna(cents) else None,
                }
            )
    budget_today = sum(a["daily_budget"] or 0 for a in ads if a["channel"] == "meta" and a["status"] == "ACTIVE")
    generation = ledger.current_generation(name)
    return {
        "name": name,
        "brand": spec.get("brand"),
        "paused": ledger.is_paused(name),
        "day": str(days["day"].max().date()) if len(days) else None,
        "generation": None if generation is None else int(generation),
        "daily_budget_cap": spec.get("daily_budget"),
        "budget_today": round(budget_today, 2),
        "ads": ads,
        "shopify": {"model_3d": _model_3d_status(ledger, name)},
    }


def _model_3d_status(ledger: Ledger, name: str) -> str | None:
    """READY or FAILED for the brief's latest 3D model on Shopify; None when it has none."""
    models = ledger.publications(name, MODEL_3D_CHANNEL)
    return None if models.empty else str(models.sort_values("updated_at")["status"].iloc[-1])


def pause_brief(
    settings: Settings, ledger: Ledger, target: str, actor: str, reason: str, reach: Brief | None = None
) -> str:
    """Pause ``target`` (a brief's name, or ``ALL_BRIEFS``) in the ledger, then its ads on Meta at once.

    The ledger comes first: from the next day on the loop keeps the ads PAUSED whatever happens here. Raises
    NoChannel or MetaError when Meta cannot be reached now. ``reach``: the brief whose account to use when
    pausing everything (default: every account the ledger's briefs name)."""
    ledger.set_paused(target, True, actor, reason)
    if target == ALL_BRIEFS:
        briefs = [reach] if reach else [Brief.model_validate(ledger.brief_spec(n)) for n in ledger.briefs()["brief"]]
        targets = [(b, None) for b in {b.meta.account_id: b for b in briefs if b.meta}.values()]
    else:
        brief = reach or Brief.model_validate(ledger.brief_spec(target))
        targets = [(brief, target)] if brief.meta else []
    notes = [_pause_on_meta(settings, ledger, b, scope) for b, scope in targets]
    return "; ".join(notes) or "no Meta ads to pause"


def _pause_on_meta(settings: Settings, ledger: Ledger, brief: Brief, scope: str | None) -> str:
    """Pause on Meta now the ads the loop published in ``brief``'s account (of brief ``scope``, or every
    brief's), and record them PAUSED in the ledger (what `status` shows)."""
    from pipelines.channels import channel

    with channel(settings, brief, "meta", temporary_ok=False) as target:
        paused = set(target.client.pause_all(scope))
    for name in [scope] if scope else list(ledger.briefs()["brief"]):
        for p in ledger.publications(name, "meta").itertuples():
            if p.ad_id in paused:
                ledger.set_status(name, p.variant_id, "meta", "PAUSED")
    return f"paused {len(paused)} ads and their ad sets on Meta (account {target.client.account_id})"
