"""What a marketer reads about a brief: per-variant metrics, what wins by factor, and the learning curve.
Plain functions of the evidence frames; intervals are Beta posteriors under a flat prior, so a level seen
a hundred times shows a wide bar and one seen a million times a narrow one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import beta

from creative.brief import Brief
from creative.vocabulary import FACTOR_NAMES
from experiments.planning import GOAL_COLUMNS

METRICS = ("impressions", "clicks", "spend", "purchases", "purchase_value")


def variant_metrics(daily: pd.DataFrame) -> pd.DataFrame:
    """Totals per variant (index: variant id) with CTR, conversion rate (purchases per click) and ROAS."""
    if daily.empty:
        return pd.DataFrame(columns=[*METRICS, "ctr", "cvr", "roas"], index=pd.Index([], name="variant_id"))
    totals = daily.groupby("variant_id")[list(METRICS)].sum(min_count=1).fillna(0.0)
    totals["ctr"] = _ratio(totals["clicks"], totals["impressions"])
    totals["cvr"] = _ratio(totals["purchases"], totals["clicks"])
    totals["roas"] = _ratio(totals["purchase_value"], totals["spend"])
    return totals


def spend_between(daily: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> float:
    """Money spent on days ``first`` to ``last`` (inclusive), in the account's currency."""
    if daily.empty:
        return 0.0
    days = pd.to_datetime(daily["day"]).dt.tz_localize(None)
    return float(daily.loc[(days >= first) & (days <= last), "spend"].fillna(0.0).sum())


def factor_effects(brief: Brief, variants: pd.DataFrame, daily: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per factor (template, colour, aspect) and level: the goal's successes, trials, rate and interval."""
    num, den = GOAL_COLUMNS[brief.goal]
    factors = variants[["variant_id", *FACTOR_NAMES]].drop_duplicates("variant_id")
    joined = daily.merge(factors, on="variant_id", how="inner") if len(daily) else factors.iloc[0:0]
    rows = []
    for factor in FACTOR_NAMES:
        grouped = joined.groupby(factor)[[num, den]].sum() if len(joined) else pd.DataFrame(columns=[num, den])
        for value, r in grouped.iterrows():
            rows.append(_rate_row(factor, str(value), float(r[num]), float(r[den]), level))
    return pd.DataFrame(rows, columns=["factor", "level", "successes", "trials", "rate", "low", "high"])


def learning_curve(
    brief: Brief, traffic: pd.DataFrame, daily: pd.DataFrame, generations: pd.DataFrame, level: float = 0.95
) -> pd.DataFrame:
    """Per generation: the goal rate of all its live traffic over its window of days, with an interval."""
    num, den = GOAL_COLUMNS[brief.goal]
    rows = []
    days = pd.to_datetime(daily["day"]).dt.tz_localize(None) if len(daily) else pd.Series(dtype="datetime64[ns]")
    for g in generations.dropna(subset=["since"]).itertuples():
        live = set(traffic.loc[traffic["generation"] == g.generation, "variant_id"])
        inside = (days >= pd.Timestamp(g.since)) & (days <= pd.Timestamp(g.until)) if len(daily) else days
        window = daily[inside & daily["variant_id"].isin(live)] if len(daily) else daily
        s = float(window[num].fillna(0).sum()) if len(window) else 0.0
        n = float(window[den].fillna(0).sum()) if len(window) else 0.0
        row = _rate_row("generation", str(int(g.generation)), s, n, level)
        rows.append({"generation": int(g.generation), **{k: row[k] for k in list(row)[2:]}})
    return pd.DataFrame(rows, columns=["generation", "successes", "trials", "rate", "low", "high"])


def _rate_row(factor: str, level_name: str, successes: float, trials: float, level: float) -> dict:
    successes = min(successes, trials)
    tail = (1 - level) / 2
    low, high = beta.ppf([tail, 1 - tail], 1 + successes, 1 + trials - successes)
    return {
        "factor": factor,
        "level": level_name,
        "successes": successes,
        "trials": trials,
        "rate": successes / trials if trials else 0.0,
        "low": float(low),
        "high": float(high),
    }


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return pd.Series(np.where(den > 0, num / den.where(den > 0, 1), 0.0), index=num.index)
