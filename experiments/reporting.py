"""What a marketer reads about a brief: per-variant metrics, what wins by factor, and the learning curve.
Plain functions of the evidence frames; intervals are Beta posteriors under a flat prior, so a level seen
a hundred times shows a wide bar and one seen a million times a narrow one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import beta

from creative.brief import Brief
from creative.vocabulary import FACTOR_NAMES, FAMILY_SWATCHES
from experiments.factorised import with_factors
from experiments.planning import GOAL_COLUMNS

METRICS = ("impressions", "clicks", "spend", "purchases", "purchase_value")
#: What the reports break the goal down by: the variant's factors, and its colour's family.
REPORT_FACTORS = ("template", "colour", "colour_family", "aspect")


def level_colour(level: str, default: str = "#4c6ef5") -> str:
    """What to draw a factor level's bar in: a colour level in itself, a colour family in its swatch."""
    level = str(level)
    return level if level.startswith("#") else FAMILY_SWATCHES.get(level, default)


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
    """Per factor (``REPORT_FACTORS``) and level: the goal's successes, trials, rate and interval."""
    num, den = GOAL_COLUMNS[brief.goal]
    factors = with_factors(variants[["variant_id", *FACTOR_NAMES]].drop_duplicates("variant_id"))
    joined = daily.merge(factors, on="variant_id", how="inner") if len(daily) else factors.iloc[0:0]
    rows = []
    for factor in REPORT_FACTORS:
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


def factor_lifts(
    evidence: pd.DataFrame, scope: str, level: float = 0.95, draws: int = 4000, seed: int = 0
) -> pd.DataFrame:
    """For each factor level, the relative lift of the goal's rate against the factor's most-tried level
    (the reference), with an interval from the two Beta posteriors (flat prior; Monte Carlo, seeded).

    ``evidence``: one row per variant with its factor columns, ``successes`` and ``trials``. ``scope`` names
    what was pooled (a brand, a brief, or the catalog)."""
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2
    rows = []
    evidence = with_factors(evidence)
    for factor in REPORT_FACTORS:
        levels = evidence.groupby(factor)[["successes", "trials"]].sum() if len(evidence) else pd.DataFrame()
        levels = levels[levels["trials"] > 0] if len(levels) else levels  # an untried level says nothing yet
        if levels.empty:
            continue
        reference = str(levels["trials"].idxmax())
        s_ref, t_ref = levels.loc[reference, ["successes", "trials"]]
        ref_draws = rng.beta(1 + s_ref, 1 + t_ref - min(s_ref, t_ref), draws)
        for value, r in levels.iterrows():
            s, t = float(min(r["successes"], r["trials"])), float(r["trials"])
            lift = rng.beta(1 + s, 1 + t - s, draws) / ref_draws - 1
            rows.append(
                {
                    "scope": scope,
                    "factor": factor,
                    "level": str(value),
                    "reference": reference,
                    "successes": s,
                    "trials": t,
                    "rate": s / t if t else 0.0,
                    "lift": 0.0 if str(value) == reference else float(np.median(lift)),
                    "lift_low": 0.0 if str(value) == reference else float(np.quantile(lift, tail)),
                    "lift_high": 0.0 if str(value) == reference else float(np.quantile(lift, 1 - tail)),
                }
            )
    return pd.DataFrame(rows)


def lift_sentence(row) -> str:
    """One line a marketer reads: "colour #7B2CBF: +12.0% [+4.0%, +20.0%] against #FFFFFF (Aqua Co)"."""
    if row["level"] == row["reference"]:
        return f"{row['factor']} {row['level']}: the reference ({row['scope']}; {int(row['trials']):,} trials)"
    return (
        f"{row['factor']} {row['level']}: {row['lift']:+.1%} [{row['lift_low']:+.1%}, {row['lift_high']:+.1%}] "
        f"against {row['reference']} ({row['scope']}; {int(row['trials']):,} trials)"
    )


def lift_plot(lifts: pd.DataFrame, out) -> None:
    """Each scope's lifts per factor level with their intervals, one panel per factor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factors = [f for f in REPORT_FACTORS if f in set(lifts["factor"])]
    fig, axes = plt.subplots(1, max(len(factors), 1), figsize=(5 * max(len(factors), 1), 4), squeeze=False)
    for ax, factor in zip(axes[0], factors):
        rows = lifts[lifts["factor"] == factor].reset_index(drop=True)
        labels = [f"{r.level}\n{r.scope}" for r in rows.itertuples()]
        err = [rows["lift"] - rows["lift_low"], rows["lift_high"] - rows["lift"]]
        colours = [level_colour(r.level) for r in rows.itertuples()]
        ax.bar(range(len(rows)), rows["lift"] * 100, yerr=np.array(err) * 100, color=colours, edgecolor="#333",
               capsize=4)  # fmt: skip
        ax.axhline(0, color="#333", linewidth=0.8)
        ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=45, ha="right")
        ax.set_title(f"{factor}: lift against the most-tried level")
        ax.set_ylabel("lift, % (95% interval)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
