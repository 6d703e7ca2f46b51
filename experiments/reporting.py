"""What a marketer reads about a brief: per-variant metrics, what wins by factor, and the learning curve.
Plain functions of the evidence frames. Rates carry Beta posteriors under a flat prior, so a level seen a
hundred times shows a wide bar and one seen a million times a narrow one; factor lifts come from the
partially pooled model over the catalog (``pooled_lifts``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creative.brief import Brief
from creative.vocabulary import FAMILY_SWATCHES, colour_family, get_template, placement_of
from experiments.factorised import FactorisedThompson, with_factors
from experiments.planning import GOAL_COLUMNS, variant_factors

METRICS = ("impressions", "clicks", "spend", "purchases", "purchase_value")
#: What the reports break the goal down by: the variant's factors, and its colour's family.
REPORT_FACTORS = ("template", "colour", "colour_family", "aspect", "placement", "kind")


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
    factors = with_factors(variant_factors(variants))
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
    from scipy.stats import beta  # 1.9 s to import: only where an interval is asked for

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


#: A lift scope: its name, and the brand and product (brief) it is read for; None for the catalog's level.
Scope = tuple[str, str | None, str | None]
LIFT_COLUMNS = ["scope", "factor", "level", "reference", "successes", "trials", "rate", "lift", "lift_low",
                "lift_high"]  # fmt: skip


def pooled_lifts(
    evidence: pd.DataFrame, scopes: list[Scope], level: float = 0.95, draws: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """For each factor level, its lift in the goal's rate against the factor's most-tried level in the scope,
    with an interval, from the partially pooled model (``experiments.factorised``) fitted once on all of
    ``evidence``. A scope is the catalog, a brand or a brief.

    The lift is read on the scope's own creatives: every combination its products ran, each product with its
    own (pooled) deviations, with the level put in for the factor's (a colour family: its most-tried shade)
    and the other factors as they ran; the ratio of their mean predicted rates, over posterior draws (the
    same draws for every level, so a lift's interval is the contrast's). So a template's lift is not the
    colours it happened to run with, and a brand with little evidence borrows from the catalog.
    ``evidence``: one row per variant with its factors, ``successes``, ``trials``, ``brand`` and ``brief``
    (the product)."""
    if evidence.empty or evidence["trials"].sum() <= 0:
        return pd.DataFrame(columns=LIFT_COLUMNS)
    evidence = with_factors(evidence.assign(product=evidence["brief"]), seasonal=False).reset_index(drop=True)
    evidence["camera"] = [get_template(t).camera for t in evidence["template"]]
    model = FactorisedThompson(n_draws=draws, random_state=seed, seasonal=False).fit(evidence)
    tail, rows = (1 - level) / 2, []
    for name, brand, product in scopes:
        mine = evidence[(evidence["brand"] == brand) if brand is not None else evidence["brand"].notna()]
        mine = mine[mine["product"] == product] if product is not None else mine
        if mine["trials"].sum() <= 0:
            continue
        combos = ["template", "colour", "aspect", "kind", "brand", "product"]
        base = mine.drop_duplicates(combos)[combos]
        for factor in REPORT_FACTORS:
            counts = mine.groupby(factor)[["successes", "trials"]].sum()
            counts = counts[counts["trials"] > 0]  # an untried level says nothing yet
            if counts.empty:
                continue
            reference = str(counts["trials"].idxmax())
            values = [str(v) for v in counts.index]
            frames = [_with_level(base, factor, v, mine) for v in values]
            rates = model.sample_rates(pd.concat(frames, ignore_index=True))  # (draws, levels x combinations)
            means = rates.reshape(len(rates), len(values), len(base)).mean(axis=2)
            ref = means[:, values.index(reference)]
            for j, value in enumerate(values):
                lift = means[:, j] / ref - 1
                s, t = float(counts.loc[counts.index[j], "successes"]), float(counts.loc[counts.index[j], "trials"])
                same = value == reference
                rows.append({"scope": name, "factor": factor, "level": value, "reference": reference,
                             "successes": s, "trials": t, "rate": s / t,
                             "lift": 0.0 if same else float(np.median(lift)),
                             "lift_low": 0.0 if same else float(np.quantile(lift, tail)),
                             "lift_high": 0.0 if same else float(np.quantile(lift, 1 - tail))})  # fmt: skip
    return pd.DataFrame(rows, columns=LIFT_COLUMNS)


def _with_level(base: pd.DataFrame, factor: str, value: str, scope: pd.DataFrame) -> pd.DataFrame:
    """The scope's combinations with one factor set to ``value`` (and what follows from it: a template's
    camera; a colour's family, or a family's most-tried shade in the scope; an aspect's placement, or a
    placement's most-tried aspect)."""
    stands_for = {"colour_family": "colour", "placement": "aspect"}
    if factor in stands_for:
        member = stands_for[factor]
        tried = scope[scope[factor] == value].groupby(member)["trials"].sum()
        factor, value = member, str(tried.idxmax())
    frame = base.assign(**{factor: value})
    frame["camera"] = [get_template(t).camera for t in frame["template"]]
    return frame.assign(colour_family=[colour_family(c) for c in frame["colour"]],
                        placement=[placement_of(a) for a in frame["aspect"]])  # fmt: skip


def lift_sentence(row) -> str:
    """One line a marketer reads: "colour #7B2CBF: +12.0% [+4.0%, +20.0%] against #FFFFFF (Aqua Co)"."""
    if row["level"] == row["reference"]:
        return f"{row['factor']} {row['level']}: the reference ({row['scope']}; {int(row['trials']):,} trials)"
    return (
        f"{row['factor']} {row['level']}: {row['lift']:+.1%} [{row['lift_low']:+.1%}, {row['lift_high']:+.1%}] "
        f"against {row['reference']} ({row['scope']}; {int(row['trials']):,} trials)"
    )


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display on a worker), imported on first use: the Dagster
    definitions import this package for every run, and only the steps that plot need it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def lift_plot(lifts: pd.DataFrame, out) -> None:
    """Each scope's lifts per factor level with their intervals, one panel per factor."""
    plt = pyplot()

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
