"""Planning a generation: which variants stay live, which new combinations get rendered, and how
traffic is split. Every choice is returned as a decision with its propensity, for offline evaluation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from creative.brief import Brief
from creative.decision import Decision
from creative.vocabulary import FACTOR_NAMES, VIDEO_ASPECTS, VariantFactors, get_template
from experiments.factorised import FactorisedThompson
from experiments.thompson import BetaThompson, empirical_prior
from rendering.colour import palette_variations

#: successes / trials per goal. ROAS and cost per purchase rank creatives by purchases per impression:
#: variants in one ad set buy impressions at the same price and sell the same product, so purchases per
#: impression orders them as revenue per spend and spend per purchase do.
GOAL_COLUMNS = {
    "ctr": ("clicks", "impressions"),
    "conversion_rate": ("purchases", "clicks"),
    "roas": ("purchases", "impressions"),
    "cost_per_purchase": ("purchases", "impressions"),
}
DELAYED_GOALS = ("conversion_rate", "roas", "cost_per_purchase")  # purchases arrive days after the click
FATIGUE_DROP = 0.25  # a variant whose last days' rate is this much below its lifetime rate has fatigued
FATIGUE_WINDOW_DAYS = 3


def candidate_colours(brief: Brief) -> list[str]:
    """The palette, plus variations within the brief's CIEDE2000 distance when it allows new colours: with
    the colour gate on, only the approved ones; never one a person rejected."""
    a = brief.autoplay
    return [
        c
        for c in palette_variations(brief.palette, a.palette_max_delta_e)
        if c in brief.palette
        or (c not in a.rejected_colours and (a.approved_colours is None or c in a.approved_colours))
    ]


def waiting_colours(brief: Brief) -> list[str]:
    """New colours the planner would try that the brief's colour gate has not let through (nor turned down)."""
    a = brief.autoplay
    if a.approved_colours is None:
        return []
    allowed = candidate_colours(brief)
    variations = palette_variations(brief.palette, a.palette_max_delta_e)
    return [c for c in variations if c not in allowed and c not in a.rejected_colours]


def approved_templates(brief: Brief) -> list[str]:
    """Templates the plan may use: all the brief's, or only the approved ones when it has a gate."""
    gate = brief.autoplay.approved_templates
    return list(brief.templates) if gate is None else [t for t in brief.templates if t in gate]


def waiting_templates(brief: Brief) -> list[str]:
    """Template families the brief names that its approval gate has not let through yet."""
    gate = brief.autoplay.approved_templates
    return [] if gate is None else [t for t in brief.templates if t not in gate]


def factor_grid(brief: Brief, today: date | None = None) -> list[VariantFactors]:
    """Every combination the brief allows: on ``today``, seasonal templates only inside their window;
    turntables (when the brief's ``autoplay.kinds`` has them) only in aspects that take video."""
    templates = [t for t in approved_templates(brief) if get_template(t).in_season(today)]
    axes = (templates, candidate_colours(brief), brief.planned_aspects, brief.autoplay.kinds)
    return [
        VariantFactors(template=t, colour=c, aspect=a, kind=k)
        for t, c, a, k in itertools.product(*axes)
        if k == "still" or a in VIDEO_ASPECTS
    ]


def variant_factors(variants: pd.DataFrame) -> pd.DataFrame:
    """Each variant's id and factors, once; a variant recorded before kinds were a factor is a still."""
    frame = variants.drop_duplicates("variant_id")
    if "kind" not in frame.columns:
        frame = frame.assign(kind="still")
    return frame[["variant_id", *FACTOR_NAMES]].assign(kind=lambda f: f["kind"].fillna("still"))


def factor_frame(factors: list[VariantFactors]) -> pd.DataFrame:
    """Factors as the policies' rows: one per combination, with the template's camera."""
    return pd.DataFrame([f.as_dict() | {"camera": f.camera} for f in factors])


def pooled_evidence(brief: Brief, history: pd.DataFrame | None, catalog: pd.DataFrame | None) -> pd.DataFrame | None:
    """The brief's evidence (as a product of its brand) beside the catalog's other briefs', for the pooled
    model; None when there is none at all."""
    own = history.assign(brand=brief.brand, product=brief.name) if history is not None else None
    frames = [f for f in (own, catalog) if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def candidates(brief: Brief, factors: list[VariantFactors], today: date | None = None) -> pd.DataFrame:
    """Combinations to score for this brief: its factors, its brand and itself as the product, on ``today``
    (the day a seasonal template's season is judged on)."""
    frame = factor_frame(factors).assign(brand=brief.brand, product=brief.name)
    return frame.assign(day=int(day_index([today])[0])) if today is not None else frame


def catalog_prior_means(
    brief: Brief,
    variants: pd.DataFrame,
    history: pd.DataFrame | None,
    catalog: pd.DataFrame | None,
    today: date | None = None,
) -> dict[str, float] | None:
    """What the pooled model predicts for each of ``variants`` on ``today`` (the centre of its prior in
    allocation), or None without evidence from other briefs (then the brief's own empirical prior serves)."""
    if catalog is None or not len(catalog) or catalog["trials"].sum() <= 0:
        return None
    model = FactorisedThompson(prior_variance=1.0, n_draws=1, seasonal=brief.autoplay.seasonal_context)
    model.fit(pooled_evidence(brief, history, catalog))
    factors = [VariantFactors.of(r) for r in variants.to_dict("records")]
    return dict(zip(variants["variant_id"].astype(str), model.posterior_mean(candidates(brief, factors, today))))


def arm_table(brief: Brief, variants: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Successes and trials per variant for the brief's goal (undiscounted totals), zero without data."""
    return totals(evidence(brief, variants, daily), variants)


def evidence(brief: Brief, variants: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Per variant and day: the goal's successes and trials, the day as an integer, and the factors.

    Every variant gets at least one row (zero trials on the newest day), so untried ones are scored too.
    """
    num, den = GOAL_COLUMNS[brief.goal]
    factors = variant_factors(variants)
    rows = daily[daily["variant_id"].isin(factors["variant_id"])] if len(daily) else daily
    frame = pd.DataFrame(
        {
            "variant_id": rows["variant_id"] if len(rows) else pd.Series(dtype=str),
            "day": day_index(rows["day"]) if len(rows) else pd.Series(dtype="int64"),
            "successes": rows[num].fillna(0.0).astype(float) if len(rows) else pd.Series(dtype=float),
            "trials": rows[den].fillna(0.0).astype(float) if len(rows) else pd.Series(dtype=float),
        }
    )
    newest = int(frame["day"].max()) if len(frame) else 0
    zero = pd.DataFrame({"variant_id": factors["variant_id"], "day": newest, "successes": 0.0, "trials": 0.0})
    frame = pd.concat([frame, zero], ignore_index=True).merge(factors, on="variant_id", how="left")
    frame["camera"] = [get_template(t).camera for t in frame["template"]]
    return frame


def day_index(days) -> np.ndarray:
    """Dates as integer days since 1970-01-01 (the unit the policies weigh age in)."""
    return (pd.to_datetime(pd.Series(days)).dt.tz_localize(None).dt.normalize() - pd.Timestamp(0)).dt.days.to_numpy()


def variant_policy(
    brief: Brief,
    arms: pd.DataFrame,
    rng: np.random.Generator,
    discounted: bool = True,
    prior_means: dict[str, float] | None = None,
) -> BetaThompson:
    alpha, beta = empirical_prior(arms)
    return BetaThompson(
        prior_alpha=alpha,
        prior_beta=beta,
        half_life_days=brief.autoplay.half_life_days if discounted else None,
        conversion_delay_days=brief.autoplay.conversion_delay_days if brief.goal in DELAYED_GOALS else None,
        random_state=int(rng.integers(2**31)),
        prior_means=prior_means,
    )


def factorised_policy(brief: Brief, rng: np.random.Generator) -> FactorisedThompson:
    return FactorisedThompson(
        half_life_days=brief.autoplay.half_life_days,
        conversion_delay_days=brief.autoplay.conversion_delay_days if brief.goal in DELAYED_GOALS else None,
        random_state=int(rng.integers(2**31)),
        seasonal=brief.autoplay.seasonal_context,
    )


def plan_generation(
    brief: Brief,
    live: pd.DataFrame,
    history: pd.DataFrame | None,
    tried: set[tuple],
    rng: np.random.Generator,
    catalog: pd.DataFrame | None = None,
    today: date | None = None,
) -> list[Decision]:
    """Keep what the posterior favours, replace fatigued winners, and explore for the remaining slots.

    ``live`` has the current live variants with their factors; ``history`` is ``evidence`` for every
    variant ever run (None before the first); ``tried`` holds every combination ever rendered. New
    combinations come from the factorised model's Thompson draws (untried ones included); before any
    evidence, uniformly at random. ``catalog`` is the evidence of the catalog's other briefs (``evidence``
    rows with ``brand`` and ``product``): the factorised model pools it, so a new brief's first plan starts
    from its brand's and the catalog's effects. Guardrails hold by construction: at most ``live_variants``,
    templates from the approved list, colours within the palette distance, nothing judged before
    ``min_impressions``; on ``today``, seasonal templates only inside their window (a kept variant whose
    season ended is retired), and the model judges each seasonal template by its season then.
    """
    size, keep_n = brief.autoplay.live_variants, brief.autoplay.keep_per_generation
    decisions: list[Decision] = []
    chosen = set()
    grid = factor_grid(brief, today)
    allowed = {f.key for f in grid}
    if len(live) and history is not None:
        arms = totals(history, live)
        live_ev = history[history["variant_id"].isin(live["variant_id"])]
        now = int(history["day"].max())
        recent = variant_policy(brief, arms, rng).fit(live_ev, now=now)
        lifetime = variant_policy(brief, arms, rng, discounted=False).fit(live_ev, now=now)
        order_ids = list(recent.variant_ids_)
        trials = arms.set_index("variant_id").loc[order_ids, "trials"].to_numpy()
        judged = trials >= brief.autoplay.min_impressions
        window = live_ev[live_ev["day"] > now - FATIGUE_WINDOW_DAYS]
        latest = variant_policy(brief, arms, rng, discounted=False).fit(window, now=now)
        latest_mean = pd.Series(latest.posterior_mean(), index=latest.variant_ids_).reindex(order_ids).to_numpy()
        fatigued = judged & (latest_mean < (1 - FATIGUE_DROP) * lifetime.posterior_mean())
        # rank by recent performance; a fatigued variant keeps the rank its lifetime earned, so that a
        # fatigued winner hands its slot to a successor instead of just dropping out
        score = np.where(fatigued, lifetime.posterior_mean(), recent.posterior_mean())
        score = np.where(judged, score, np.inf)  # unjudged variants stay until judged
        model = factorised_policy(brief, rng).fit(pooled_evidence(brief, history, catalog), now=now)
        by_id = live.set_index("variant_id")
        for i in np.argsort(-score, kind="stable")[:keep_n]:
            row = by_id.loc[order_ids[i]]
            f = VariantFactors.of(row)
            if f.key not in allowed:
                continue  # its template lost approval or its colour left the palette: retire it
            if fatigued[i] and (successor := _successor(brief, f, model, tried | chosen, allowed, today)) is not None:
                decisions.append(Decision("succeed", None, successor, 1.0, f"replaces fatigued {order_ids[i]}"))
                chosen.add(successor.key)
            else:
                decisions.append(Decision("keep", order_ids[i], f, 1.0))
                chosen.add(f.key)
    elif (prior := pooled_evidence(brief, history, catalog)) is not None and prior["trials"].sum() > 0:
        model = factorised_policy(brief, rng).fit(prior)  # a new brief: what its brand and the catalog learnt
    else:
        model = None
    untried = [f for f in grid if f.key not in tried | chosen]
    n_new = min(size - len(decisions), len(untried))
    if n_new and model is not None:
        for j, propensity in model.propose(candidates(brief, untried, today), n_new):
            decisions.append(Decision("explore", None, untried[j], propensity))
    elif n_new:
        for j in rng.choice(len(untried), size=n_new, replace=False):
            decisions.append(Decision("explore", None, untried[j], n_new / len(untried)))
    return decisions


def totals(history: pd.DataFrame, live: pd.DataFrame) -> pd.DataFrame:
    """Undiscounted successes and trials per variant of ``live``, from ``evidence`` rows."""
    totals = history.groupby("variant_id", sort=False)[["successes", "trials"]].sum()
    return totals.reindex(live["variant_id"]).fillna(0.0).reset_index()


def _successor(
    brief: Brief,
    factors: VariantFactors,
    model: FactorisedThompson,
    taken: set[tuple],
    allowed: set[tuple],
    today: date | None = None,
) -> VariantFactors | None:
    """The untried combination that keeps the most of a fatigued winner's factors, best by the model: all
    but one (the same template and colour in another aspect, a nearby colour, or as a turntable), else all
    but two."""
    pool = [VariantFactors(**dict(zip(FACTOR_NAMES, k))) for k in sorted(allowed - taken)]
    for need in (len(FACTOR_NAMES) - 1, len(FACTOR_NAMES) - 2):
        same = [f for f in pool if sum(a == b for a, b in zip(f.key, factors.key)) >= need]
        if same:
            scores = model.posterior_mean(candidates(brief, same, today))
            return same[int(np.argmax(scores))]
    return None


def allocate(
    brief: Brief, events: pd.DataFrame, rng: np.random.Generator, prior_means: dict[str, float] | None = None
) -> pd.Series:
    """Traffic shares for the live variants in ``events`` (index: variant id), summing to 1, floored.
    ``prior_means``: each variant's predicted rate from the catalog (``catalog_prior_means``)."""
    arms = totals(events, events.drop_duplicates("variant_id"))
    policy = variant_policy(brief, arms, rng, prior_means=prior_means).fit(events)
    return policy.allocate(brief.autoplay.exploration_floor)


def budgets_in_cents(
    brief: Brief, shares: pd.Series, previous: pd.Series | None = None, minimum_cents: int = 100
) -> pd.Series:
    """Per-variant daily budgets: the platform minimum each, the rest split by share.

    Guardrails, in order of precedence: the total never exceeds the brief's cap (a cap too small to give
    every live variant the minimum is refused rather than overspent); an ad set that had a budget
    (``previous``, in cents) moves by at most ``max_budget_step`` of it, so Meta's delivery does not
    re-enter learning; new ad sets start wherever their share puts them. Only when the cap itself shrank
    below what the step limit would keep does the cap win over the step.
    """
    cap = int(round(brief.daily_budget * 100))
    n = len(shares)
    if minimum_cents * n > cap:
        raise ValueError(
            f"daily_budget {brief.daily_budget} cannot give {n} live variants the minimum of "
            f"{minimum_cents / 100:.2f} each"
        )
    spare = cap - minimum_cents * n
    weights = shares.to_numpy(float) / shares.sum()
    target = minimum_cents + np.floor(weights * spare)
    if previous is None:
        return pd.Series(target.astype(int), index=shares.index, name="daily_budget_cents")
    step = brief.autoplay.max_budget_step
    prev = previous.reindex(shares.index).to_numpy(float)
    had = ~np.isnan(prev)
    lo = np.where(had, np.maximum(minimum_cents, np.ceil(np.nan_to_num(prev) * (1 - step))), minimum_cents)
    hi = np.where(had, np.maximum(minimum_cents, np.floor(np.nan_to_num(prev) * (1 + step))), np.inf)
    if lo.sum() > cap:
        lo = np.full(n, float(minimum_cents))
    cents = np.clip(target, lo, hi)
    if cents.sum() > cap:  # pull everything back towards its lower bound by the same fraction
        cents = lo + np.floor((cents - lo) * (cap - lo.sum()) / (cents - lo).sum())
    return pd.Series(cents.astype(int), index=shares.index, name="daily_budget_cents")


def logged_propensities(budgets: pd.Series) -> pd.Series:
    """The share of the day each variant was given, as delivery follows it: its budget over the total.

    This, not the Thompson share, is the logging policy that ran: budgets are floored at the platform minimum
    and move at most ``max_budget_step`` a day, so offline evaluation must weigh outcomes by them."""
    total = float(budgets.sum())
    if total <= 0:
        raise ValueError("no budget to share: every live variant has 0")
    return budgets.astype(float) / total


@dataclass(frozen=True)
class AdSetting:
    ad_id: str
    active: bool
    budget_cents: int


@dataclass(frozen=True)
class AdSetSetting:
    active: bool
    budget_cents: int


@dataclass(frozen=True)
class AdSetPlan:
    """What to write to the platform today: each ad's status, each ad set's budget and status."""

    ads: dict[str, AdSetting]
    adsets: dict[str, AdSetSetting]


def adset_plan(publications: pd.DataFrame, budgets: pd.Series, activate: bool, minimum_cents: int) -> AdSetPlan:
    """Roll per-variant budgets up to the ad sets that hold them (an ad set the brief names holds several).

    ``publications`` is indexed by variant id with ``ad_id``, ``adset_id`` and ``status``. A variant not in
    ``budgets`` is no longer live: paused, once (one already PAUSED or DISAPPROVED is left alone). An ad set
    never goes under the platform minimum; it is active when any of its ads is.
    """
    ads: dict[str, AdSetting] = {}
    cents: dict[str, int] = {}
    active: dict[str, bool] = {}
    for variant_id, pub in publications.iterrows():
        live_now = variant_id in budgets.index
        if not live_now and pub["status"] in ("PAUSED", "DISAPPROVED"):
            continue
        on = live_now and activate
        ads[variant_id] = AdSetting(pub["ad_id"], on, int(budgets.get(variant_id, 0)))
        cents[pub["adset_id"]] = cents.get(pub["adset_id"], 0) + int(budgets.get(variant_id, 0))
        active[pub["adset_id"]] = active.get(pub["adset_id"], False) or on
    adsets = {a: AdSetSetting(active[a], max(c, minimum_cents)) for a, c in cents.items()}
    return AdSetPlan(ads, adsets)


def leaderboard(
    brief: Brief,
    variants: pd.DataFrame,
    daily: pd.DataFrame,
    shares: pd.Series | None = None,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """Variants ranked by posterior mean, with the evidence behind it and their traffic share."""
    arms = arm_table(brief, variants, daily)
    policy = variant_policy(brief, arms, rng or np.random.default_rng(), discounted=False).fit(arms)
    lo, hi = policy.interval(0.95)
    num, den = GOAL_COLUMNS[brief.goal]
    board = variant_factors(variants)
    board[den] = arms["trials"].to_numpy()
    board[num] = arms["successes"].to_numpy()
    board[brief.goal] = np.where(board[den] > 0, board[num] / board[den].where(board[den] > 0, 1), 0.0)
    board["posterior_mean"], board["ci_low"], board["ci_high"] = policy.posterior_mean(), lo, hi
    board["p_best"] = policy.prob_best()
    board["traffic_share"] = board["variant_id"].map(shares).fillna(0.0) if shares is not None else 0.0
    return board.sort_values("posterior_mean", ascending=False).reset_index(drop=True)
