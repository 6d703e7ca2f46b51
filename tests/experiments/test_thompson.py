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


def test_factor_encoding_matches_scikit_learns_and_reads_a_policy_pickled_with_its_encoders():
    """The factorised policy's own one-hot encoding gives scikit-learn's columns (an unknown level scores as all
    zeros), and a policy registered while it used scikit-learn's encoders predicts the same after loading."""
    import pickle

    from sklearn.preprocessing import OneHotEncoder

    from experiments.factorised import FactorisedThompson, OneHot

    rng = np.random.default_rng(3)
    seen = pd.DataFrame(
        {"template": rng.choice(["studio", "hero", "podium"], 40), "aspect": rng.choice(["1:1", "9:16"], 40)}
    )
    new = pd.DataFrame({"template": ["hero", "lifestyle"], "aspect": ["4:5", "1:1"]})
    ours, theirs = OneHot().fit(seen), OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(seen)
    assert np.array_equal(ours.transform(new), theirs.transform(new))
    assert ours.get_feature_names_out() == list(theirs.get_feature_names_out())

    evidence = seen.assign(colour=rng.choice(["#1F6FEB", "#E8D5C4"], 40), successes=rng.integers(0, 9, 40), trials=80,
                           brand="Aqua Co", product=rng.choice(["bottle", "flask"], 40))  # fmt: skip
    model = FactorisedThompson(random_state=0).fit(evidence)
    candidates = evidence.drop(columns=["successes", "trials"]).iloc[:6]
    expected = model.posterior_mean(candidates)
    features = model.features_  # as registered before: scikit-learn's encoders over the same columns and levels
    features.encoder_ = _sklearn_twin(features.encoder_)
    features.levels_ = [(column, scale, _sklearn_twin(encoder)) for column, scale, encoder in features.levels_]
    loaded = pickle.loads(pickle.dumps(model))
    assert isinstance(loaded.features_.encoder_, OneHot)
    assert np.allclose(loaded.posterior_mean(candidates), expected)


def _sklearn_twin(encoder):
    from sklearn.preprocessing import OneHotEncoder

    one_row = pd.DataFrame({c: [levels[0]] for c, levels in zip(encoder.columns_, encoder.categories_)})
    return OneHotEncoder(categories=encoder.categories_, handle_unknown="ignore", sparse_output=False).fit(one_row)
