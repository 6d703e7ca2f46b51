import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import planning
from experiments.brief import load_brief
from tests.conftest import EXAMPLE_BRIEF

BRIEF = load_brief(EXAMPLE_BRIEF)


def test_first_generation_draws_distinct_combinations_with_their_inclusion_probability():
    decisions = planning.plan_generation(BRIEF, pd.DataFrame(), None, set(), np.random.default_rng(0))
    assert len(decisions) == BRIEF.autoplay.live_variants
    assert len({planning.factor_key(d.factors) for d in decisions}) == len(decisions)
    grid = len(planning.factor_grid(BRIEF))
    assert all(d.kind == "explore" and d.propensity == BRIEF.autoplay.live_variants / grid for d in decisions)


def test_next_generation_keeps_the_posterior_favourites_and_explores_only_untried_combinations():
    grid = planning.factor_grid(BRIEF)
    live = pd.DataFrame([{"variant_id": f"v{i}", **f} for i, f in enumerate(grid[:6])])
    clicks = [50, 400, 60, 300, 55, 250]
    arms = pd.DataFrame({"variant_id": live["variant_id"], "successes": clicks, "trials": [20_000] * 6})
    tried = {planning.factor_key(f) for f in grid[:6]}
    decisions = planning.plan_generation(BRIEF, live, arms, tried, np.random.default_rng(0))
    kept = [d.variant_id for d in decisions if d.kind == "keep"]
    by_clicks = [f"v{i}" for i in sorted(range(6), key=lambda i: -clicks[i])]
    assert kept == by_clicks[: BRIEF.autoplay.keep_per_generation]
    explored = [d for d in decisions if d.kind == "explore"]
    assert len(explored) == BRIEF.autoplay.live_variants - BRIEF.autoplay.keep_per_generation
    assert all(planning.factor_key(d.factors) not in tried for d in explored)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20), st.floats(0.5, 10_000.0))
def test_budgets_never_exceed_the_daily_cap(weights, cap):
    shares = pd.Series(weights, index=[f"v{i}" for i in range(len(weights))]) + 1e-9
    shares = shares / shares.sum()
    brief = BRIEF.model_copy(update={"daily_budget": cap})
    if round(cap * 100) < 100 * len(shares):
        with pytest.raises(ValueError, match="cannot give"):
            planning.budgets_in_cents(brief, shares)
        return
    cents = planning.budgets_in_cents(brief, shares)
    assert cents.sum() <= round(cap * 100)
    assert (cents >= 100).all()
    assert cents.idxmax() == shares.idxmax() or cents.max() == cents[shares.idxmax()]
