"""Beta-Bernoulli Thompson sampling over variants, with allocation as the probability of being best."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.evidence import arm_evidence


def empirical_prior(arms: pd.DataFrame, strength: float = 400.0) -> tuple[float, float]:
    """A Beta prior centred on the typical variant's rate, worth ``strength`` trials.

    With a flat Beta(1, 1) prior an untried variant almost always wins a draw against rates of a few
    percent, so new variants would take the traffic from proven ones. Centring the prior on what a
    typical variant achieves (the mean of per-variant rates, not the traffic-weighted rate that the
    current winner dominates) lets a new one compete fairly until its own data speaks.
    """
    seen = arms[arms["trials"] > 0]
    if seen.empty:
        return 1.0, 1.0
    rates = (seen["successes"].to_numpy(float) + 0.5) / (seen["trials"].to_numpy(float) + 1.0)
    rate = float(np.clip(rates.mean(), 1e-4, 1 - 1e-4))
    return rate * strength, (1 - rate) * strength


class BetaThompson:
    """Independent Beta posteriors per variant.

    ``fit`` takes a frame of events or of daily aggregates: ``variant_id``, ``successes``, ``trials`` and,
    to weigh by age, ``day`` (integer day index). ``half_life_days`` discounts old evidence (creative
    fatigue, market shifts); ``conversion_delay_days`` discounts trials whose conversions are still due.
    ``prior_means`` centres a variant's prior on a predicted rate (the catalog's, for a new variant).
    Learned attributes: ``variant_ids_``, ``alpha_``, ``beta_``.
    """

    def __init__(
        self,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        n_draws: int = 20000,
        half_life_days: float | None = None,
        conversion_delay_days: float | None = None,
        random_state: int | None = None,
        prior_means: dict[str, float] | None = None,
    ) -> None:
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta
        self.prior_means = prior_means
        self.n_draws = n_draws
        self.half_life_days = half_life_days
        self.conversion_delay_days = conversion_delay_days
        self.random_state = random_state

    def fit(self, events: pd.DataFrame, now: int | None = None) -> BetaThompson:
        arms = arm_evidence(events, ["variant_id"], now, self.half_life_days, self.conversion_delay_days)
        successes = arms["successes"].to_numpy(float)
        trials = arms["trials"].to_numpy(float)
        if np.any(successes > trials + 1e-9) and not self.conversion_delay_days:
            raise ValueError("successes must not exceed trials for any variant")
        trials = np.maximum(trials, successes)
        self.variant_ids_ = arms["variant_id"].astype(str).to_numpy()
        alpha0, beta0 = self._priors(self.variant_ids_)
        self.alpha_ = alpha0 + successes
        self.beta_ = beta0 + trials - successes
        self._rng = np.random.default_rng(self.random_state)
        return self

    def _priors(self, variant_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each variant's Beta prior: centred on its ``prior_means`` entry when it has one (what the catalog's
        model predicts for it), worth as many trials as the shared prior; the shared prior otherwise."""
        strength = self.prior_alpha + self.prior_beta
        means = np.array([(self.prior_means or {}).get(v, np.nan) for v in variant_ids], float)
        means = np.clip(means, 1e-4, 1 - 1e-4)
        alpha = np.where(np.isnan(means), self.prior_alpha, strength * means)
        return alpha, np.where(np.isnan(means), self.prior_beta, strength - alpha)

    def posterior_mean(self) -> np.ndarray:
        return self.alpha_ / (self.alpha_ + self.beta_)

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        tail = (1 - level) / 2
        from scipy.stats import beta as beta_dist  # 1.9 s to import: only where an interval is asked for

        return beta_dist.ppf(tail, self.alpha_, self.beta_), beta_dist.ppf(1 - tail, self.alpha_, self.beta_)

    def prob_best(self) -> np.ndarray:
        """P(each variant has the highest rate), by Monte Carlo over the posteriors."""
        if not len(self.alpha_):
            return np.zeros(0)
        draws = self._rng.beta(self.alpha_[:, None], self.beta_[:, None], size=(len(self.alpha_), self.n_draws))
        wins = np.bincount(draws.argmax(axis=0), minlength=len(self.alpha_))
        return wins / self.n_draws

    def subset(self, variant_ids) -> BetaThompson:
        """The posteriors of ``variant_ids`` only, in that order; an id never seen gets the prior."""
        known = dict(zip(self.variant_ids_, zip(self.alpha_, self.beta_)))
        out = BetaThompson(self.prior_alpha, self.prior_beta, self.n_draws, random_state=self.random_state)
        out.variant_ids_ = np.asarray([str(v) for v in variant_ids])
        pairs = [known.get(v, (self.prior_alpha, self.prior_beta)) for v in out.variant_ids_]
        out.alpha_ = np.array([a for a, _ in pairs], float)
        out.beta_ = np.array([b for _, b in pairs], float)
        out._rng = self._rng
        return out

    def expected_regret(self, shares) -> float:
        """Posterior expected loss per trial of splitting traffic by ``shares``: E[max rate - rate served]."""
        draws = self._rng.beta(self.alpha_[:, None], self.beta_[:, None], size=(len(self.alpha_), self.n_draws))
        return float(np.mean(draws.max(axis=0) - np.asarray(shares, float) @ draws))

    def allocate(self, exploration_floor: float = 0.0) -> pd.Series:
        """Traffic shares: P(best), mixed with a floor so every live variant keeps learning."""
        n = len(self.alpha_)
        if exploration_floor * n >= 1:
            raise ValueError("exploration_floor x number of variants must stay below 1")
        shares = exploration_floor + (1 - exploration_floor * n) * self.prob_best()
        return pd.Series(shares, index=self.variant_ids_, name="share")
