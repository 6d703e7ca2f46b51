"""The offline estimators: the published formulas on simulated logs where the truth is known, bad input, and
the Open Bandit Dataset check (the uniform policy's CTR estimated from the Thompson-sampling log)."""

import numpy as np
import pandas as pd
import pytest

from experiments.evaluation import dr, ips, snips
from experiments.obd import uniform_policy_from_bts

RATES = np.array([0.02, 0.05, 0.03])


def logged(rng, n=20_000, rates=RATES):
    """A log from a policy favouring arm 0; the target always plays arm 1 (true value rates[1])."""
    logging = np.array([0.6, 0.1, 0.3])
    actions = rng.choice(3, size=n, p=logging)
    rewards = (rng.random(n) < rates[actions]).astype(float)
    target = (actions == 1).astype(float)
    return rewards, logging[actions], target, actions


def test_on_policy_ips_is_the_plain_mean():
    rewards = np.array([0, 1, 0, 1, 1.0])
    p = np.full(5, 0.5)
    assert ips(rewards, p, p).value == pytest.approx(0.6)
    assert snips(rewards, p, p).value == pytest.approx(0.6)


def test_intervals_cover_the_true_value_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = {"ips": 0, "snips": 0, "dr": 0}
    for _ in range(200):
        rewards, p_log, p_new, actions = logged(rng, 5_000)
        model = np.array([0.025, 0.045, 0.03])  # a slightly wrong reward model: DR must still be right
        for est in (ips(rewards, p_log, p_new), snips(rewards, p_log, p_new)):
            covered[est.estimator] += est.contains(RATES[1])
        covered["dr"] += dr(rewards, p_log, p_new, model[actions], np.full(len(actions), model[1])).contains(RATES[1])
    for name, hits in covered.items():
        assert 0.88 <= hits / 200 <= 0.995, (name, hits)


def test_doubly_robust_is_tighter_than_ips_with_a_good_reward_model():
    rates = np.array([0.4, 0.7, 0.5])  # frequent rewards: a model explains much of them (rare clicks it cannot)
    rewards, p_log, p_new, actions = logged(np.random.default_rng(1), rates=rates)
    plain = ips(rewards, p_log, p_new)
    robust = dr(rewards, p_log, p_new, rates[actions], np.full(len(actions), rates[1]))
    assert robust.contains(rates[1])
    assert robust.high - robust.low < 0.8 * (plain.high - plain.low)


def test_bad_propensities_are_refused_with_the_row():
    with pytest.raises(ValueError, match="logging_propensities must lie in \\(0, 1\\]; row 1"):
        ips([1, 0], [0.5, 0.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="target_propensities has 1 rows, rewards has 2"):
        snips([1, 0], [0.5, 0.5], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        ips([1, np.nan], [0.5, 0.5], [0.5, 0.5])


def test_open_bandit_dataset_uniform_ctr_from_the_thompson_log():
    truth, estimates = uniform_policy_from_bts()
    assert truth == pytest.approx(0.0038)  # what the random log observed
    for est in estimates:
        assert est.contains(truth), est
        assert est.n == 10_000 and 0 < est.effective_n < 10_000


def test_snips_over_counts_equals_snips_over_the_expanded_trials():
    from experiments.evaluation import snips, snips_counts

    rng = np.random.default_rng(3)
    trials = rng.integers(1, 400, size=12)
    successes = rng.binomial(trials, 0.05)
    logging, target = rng.uniform(0.05, 0.6, 12), rng.uniform(0.0, 0.6, 12)
    rewards = np.concatenate([np.r_[np.ones(s), np.zeros(t - s)] for s, t in zip(successes, trials)])
    expanded = snips(rewards, np.repeat(logging, trials), np.repeat(target, trials))
    counted = snips_counts(successes, trials, logging, target)
    for field in ("value", "low", "high", "effective_n"):
        assert getattr(counted, field) == pytest.approx(getattr(expanded, field), rel=1e-9)
    assert counted.n == expanded.n == trials.sum()


def test_snips_of_the_loops_logging_policy_on_its_own_logs_covers_its_true_value():
    """The propensities the allocation logs are the budget shares that ran: evaluated on its own per-day logs,
    the logging policy's SNIPS interval holds its on-policy value about 95% of the time."""
    from creative.brief import load_brief
    from experiments.evaluation import snips_counts
    from experiments.simulation import logged_days
    from tests.conftest import EXAMPLE_BRIEF

    brief = load_brief(EXAMPLE_BRIEF)
    rates = pd.Series([0.02, 0.035, 0.025, 0.03], index=["va", "vb", "vc", "vd"])
    held = 0
    for seed in range(40):
        log, truth = logged_days(brief, rates, days=8, impressions_per_day=5_000, seed=seed)
        assert log.groupby("day")["propensity"].sum().round(9).eq(1).all()
        estimate = snips_counts(log["successes"], log["trials"], log["propensity"], log["propensity"])
        held += estimate.contains(truth)
    assert held >= 34, f"{held} of 40 intervals held the logging policy's true value"
