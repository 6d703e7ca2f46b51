"""The loop's own daily policy on a market whose truth is known: what the offline evaluation is checked
against (benchmarks and tests share it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creative.brief import Brief
from experiments import planning


def logged_days(
    brief: Brief, rates: pd.Series, days: int, impressions_per_day: int, seed: int
) -> tuple[pd.DataFrame, float]:
    """Run ``brief``'s allocation for ``days`` over variants with true click rates ``rates`` (index: variant
    id): Thompson shares, budgets within the cap and the daily step, delivery following the budgets.

    Returns the log (one row per variant and day: ``propensity`` as ``planning.logged_propensities`` records
    it, ``successes``, ``trials``) and the logging policy's true value: the expected click rate of what
    ran, from the true rates."""
    rng, market = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    variants = pd.DataFrame({"variant_id": rates.index, "template": "studio", "colour": brief.palette[0],
                             "aspect": "1:1"})  # fmt: skip
    rows: list[dict] = []
    previous, expected = None, 0.0
    for day in range(days):
        stamp = pd.Timestamp("2026-11-01") + pd.Timedelta(days=day)
        daily = pd.DataFrame(rows, columns=["variant_id", "day", "impressions", "clicks"])
        daily = daily.assign(purchases=0.0, spend=0.0, purchase_value=0.0)
        shares = planning.allocate(brief, planning.evidence(brief, variants, daily), rng)
        budgets = planning.budgets_in_cents(brief, shares, previous)
        ran = planning.logged_propensities(budgets).reindex(rates.index)
        impressions = market.multinomial(impressions_per_day, ran.to_numpy())
        clicks = market.binomial(impressions, rates.to_numpy())
        expected += float(ran.to_numpy() @ rates.to_numpy()) * impressions_per_day
        rows += [{"variant_id": v, "day": stamp, "impressions": float(n), "clicks": float(c), "propensity": p}
                 for v, n, c, p in zip(rates.index, impressions, clicks, ran)]  # fmt: skip
        previous = budgets
    log = pd.DataFrame(rows).rename(columns={"clicks": "successes", "impressions": "trials"})
    return log[["variant_id", "day", "propensity", "successes", "trials"]], expected / (days * impressions_per_day)
