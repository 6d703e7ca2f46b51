import numpy as np
import pandas as pd
import pytest

from experiments.thompson import BetaThompson, empirical_prior


def arms(*rows):
    return pd.DataFrame(rows, columns=["variant_id", "successes", "trials"])


def test_posterior_follows_the_data_and_ranks_a_clear_winner_best():
    a = arms(("good", 300, 10_000), ("bad", 100, 10_000), ("meh", 150, 10_000))
    ts = BetaThompson(random_state=1).fit(a)
    np.testing.assert_allclose(ts.posterior_mean(), [301 / 10_002, 101 / 10_002, 151 / 10_002])
    lo, hi = ts.interval(0.95)
    assert np.all(lo < ts.posterior_mean()) and np.all(ts.posterior_mean() < hi)
    p = ts.prob_best()
    assert p.sum() == pytest.approx(1.0)
    assert p[0] > 0.99


def test_allocation_keeps_the_exploration_floor_and_sums_to_one():
    ts = BetaThompson(random_state=2).fit(arms(("a", 300, 10_000), ("b", 10, 10_000), ("c", 12, 10_000)))
    shares = ts.allocate(exploration_floor=0.05)
    assert shares.sum() == pytest.approx(1.0)
    assert shares.min() >= 0.05 - 1e-12
    assert shares.idxmax() == "a"


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="must not exceed trials"):
        BetaThompson().fit(arms(("a", 11, 10)))


def test_untried_variant_does_not_take_the_traffic_of_a_proven_one():
    data = arms(("proven", 400, 20_000), ("new", 0, 0))
    alpha, beta = empirical_prior(data)
    shares = BetaThompson(prior_alpha=alpha, prior_beta=beta, random_state=3).fit(data).allocate(0.0)
    flat = BetaThompson(random_state=3).fit(data).allocate(0.0)
    assert flat["new"] > 0.9  # the failure mode a flat prior has at CTRs of a few percent
    assert 0.2 < shares["new"] < 0.6
