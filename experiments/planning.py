"""Planning a generation: which variants stay live, which new combinations get rendered, and how
traffic is split. Every choice is returned as a decision with its propensity, for offline evaluation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.brief import Brief
from experiments.thompson import BetaThompson, empirical_prior

GOAL_COLUMNS = {"ctr": ("clicks", "impressions"), "conversion_rate": ("purchases", "clicks")}


@dataclass(frozen=True)
class Decision:
    kind: str  # "keep", "explore" or "allocate"
    variant_id: str | None
    factors: dict
    propensity: float


def factor_grid(brief: Brief) -> list[dict]:
    return [
        {"template": t, "colour": c, "aspect": a}
        for t, c, a in itertools.product(brief.templates, brief.palette, brief.aspects)
    ]


def factor_key(factors: dict) -> tuple:
    return factors["template"], factors["colour"], factors["aspect"]


def arm_table(brief: Brief, variants: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Successes and trials per variant for the brief's goal, zero for variants with no data yet."""
    num, den = GOAL_COLUMNS[brief.goal]
    totals = daily.groupby("variant_id")[[num, den]].sum().astype(float) if len(daily) else None
    arms = variants[["variant_id"]].copy()
    arms[num] = arms["variant_id"].map(totals[num]).fillna(0.0) if totals is not None else 0.0
    arms[den] = arms["variant_id"].map(totals[den]).fillna(0.0) if totals is not None else 0.0
    return arms.rename(columns={num: "successes", den: "trials"})[["variant_id", "successes", "trials"]]


def plan_generation(
    brief: Brief, live: pd.DataFrame, arms: pd.DataFrame, tried: set[tuple], rng: np.random.Generator
) -> list[Decision]:
    """Keep what the posterior favours, explore untried combinations for the remaining slots.

    ``live`` has the current live variants with their factors; ``tried`` holds every combination ever
    rendered. The first generation (nothing live) draws all slots at random.
    """
    size, keep_n = brief.autoplay.live_variants, brief.autoplay.keep_per_generation
    decisions: list[Decision] = []
    if len(live):
        live_arms = arms.set_index("variant_id").loc[live["variant_id"]].reset_index()
        policy = _policy(arms, rng).fit(live_arms)
        judged = (
            arms.set_index("variant_id").loc[live["variant_id"], "trials"].to_numpy() >= brief.autoplay.min_impressions
        )
        score = np.where(judged, policy.posterior_mean(), np.inf)  # unjudged variants stay until judged
        order = np.argsort(-score, kind="stable")[:keep_n]
        for i in order:
            row = live.iloc[i]
            decisions.append(Decision("keep", row["variant_id"], _factors(row), 1.0))
    untried = [f for f in factor_grid(brief) if factor_key(f) not in tried]
    n_new = min(size - len(decisions), len(untried))
    for j in rng.choice(len(untried), size=n_new, replace=False) if n_new else []:
        decisions.append(Decision("explore", None, untried[j], n_new / len(untried)))
    return decisions


def allocate(brief: Brief, arms: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    """Traffic shares for the live variants (index: variant id), summing to 1, floored for exploration."""
    policy = _policy(arms, rng).fit(arms)
    return policy.allocate(brief.autoplay.exploration_floor)


def budgets_in_cents(brief: Brief, shares: pd.Series, minimum_cents: int = 100) -> pd.Series:
    """Per-variant daily budgets: the platform minimum each, the rest split by share.

    The total never exceeds the brief's cap (a hard constraint); a cap too small to give every live
    variant the minimum is refused rather than overspent.
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
    cents = minimum_cents + np.floor(weights * spare).astype(int)
    return pd.Series(cents, index=shares.index, name="daily_budget_cents")


def leaderboard(
    brief: Brief,
    variants: pd.DataFrame,
    daily: pd.DataFrame,
    shares: pd.Series | None = None,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """Variants ranked by posterior mean, with the evidence behind it and their traffic share."""
    arms = arm_table(brief, variants, daily)
    policy = _policy(arms, rng or np.random.default_rng()).fit(arms)
    lo, hi = policy.interval(0.95)
    num, den = GOAL_COLUMNS[brief.goal]
    board = variants[["variant_id", "template", "colour", "aspect"]].copy()
    board[den] = arms["trials"].to_numpy()
    board[num] = arms["successes"].to_numpy()
    board[brief.goal] = np.where(board[den] > 0, board[num] / board[den].where(board[den] > 0, 1), 0.0)
    board["posterior_mean"], board["ci_low"], board["ci_high"] = policy.posterior_mean(), lo, hi
    board["p_best"] = policy.prob_best()
    board["traffic_share"] = board["variant_id"].map(shares).fillna(0.0) if shares is not None else 0.0
    return board.sort_values("posterior_mean", ascending=False).reset_index(drop=True)


def _policy(arms: pd.DataFrame, rng: np.random.Generator) -> BetaThompson:
    alpha, beta = empirical_prior(arms)
    return BetaThompson(prior_alpha=alpha, prior_beta=beta, random_state=int(rng.integers(2**31)))


def _factors(row: pd.Series) -> dict:
    return {"template": row["template"], "colour": row["colour"], "aspect": row["aspect"]}
