"""Off-policy evaluation: what a new policy would have earned, estimated from decisions another policy logged.

Each function takes one row per logged decision: the reward observed, the probability the logging policy
gave the action it took, and the probability the target policy gives that same action. They return the
estimate with a 95% interval from the normal approximation (the sample is an average of independent
terms; for SNIPS, the delta method). Formulas: Dudík, Langford and Li, "Doubly Robust Policy Evaluation and
Learning" (ICML 2011); Swaminathan and Joachims, "The Self-Normalized Estimator for Counterfactual
Learning" (NeurIPS 2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A policy value with its interval; ``n`` logged decisions, ``effective_n`` after importance weighting."""

    estimator: str
    value: float
    low: float
    high: float
    n: int
    effective_n: float

    def contains(self, truth: float) -> bool:
        return self.low <= truth <= self.high

    def as_dict(self) -> dict:
        return {
            "estimator": self.estimator,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "effective_n": self.effective_n,
        }


def ips(rewards, logging_propensities, target_propensities) -> Estimate:
    """Inverse propensity scoring: the mean of reward x (target / logging probability). Unbiased."""
    r, w = _weights(rewards, logging_propensities, target_propensities)
    return _mean_estimate("ips", w * r, w)


def snips(rewards, logging_propensities, target_propensities) -> Estimate:
    """Self-normalised IPS: sum(w r) / sum(w). Slightly biased, far less variable when weights are large."""
    r, w = _weights(rewards, logging_propensities, target_propensities)
    total = w.sum()
    if total <= 0:
        raise ValueError("the target policy gives probability 0 to every logged action; nothing to estimate")
    value = float((w * r).sum() / total)
    # delta method: the influence of each row is w (r - value) / mean(w)
    influence = w * (r - value) / w.mean()
    half = Z_95 * influence.std(ddof=1) / np.sqrt(len(r)) if len(r) > 1 else np.inf
    return Estimate("snips", value, value - half, value + half, len(r), _effective_n(w))


def snips_counts(successes, trials, logging_propensities, target_propensities) -> Estimate:
    """SNIPS over aggregated rows: each row stands for ``trials`` decisions with the same propensities, of
    which ``successes`` earned reward 1. The same value and interval as ``snips`` on the expanded rows,
    in memory of the row count, not the impression count."""
    t = _array(trials, "trials")
    s = np.minimum(_array(successes, "successes", len(t)), t)
    _, w = _weights(np.zeros(len(t)), logging_propensities, target_propensities)
    n, total = t.sum(), (w * t).sum()
    if total <= 0:
        raise ValueError("the target policy gives probability 0 to every logged action; nothing to estimate")
    value = float((w * s).sum() / total)
    mean_w = total / n
    squares = (w**2 * (s * (1 - value) ** 2 + (t - s) * value**2)).sum() / mean_w**2
    half = Z_95 * np.sqrt(squares / (n - 1)) / np.sqrt(n) if n > 1 else np.inf
    effective = float(total**2 / (w**2 * t).sum())
    return Estimate("snips", value, value - half, value + half, int(n), effective)


def dr(rewards, logging_propensities, target_propensities, predicted_rewards, target_predicted_rewards) -> Estimate:
    """Doubly robust: the reward model's value of the target policy, corrected by weighted residuals.

    ``predicted_rewards``: the model's prediction for each logged action. ``target_predicted_rewards``: the
    model's expected reward under the target policy in the same context (sum over actions of target
    probability x prediction). Unbiased when either the propensities or the model are right.
    """
    r, w = _weights(rewards, logging_propensities, target_propensities)
    q_logged = _array(predicted_rewards, "predicted_rewards", len(r))
    q_target = _array(target_predicted_rewards, "target_predicted_rewards", len(r))
    return _mean_estimate("dr", q_target + w * (r - q_logged), w)


def _mean_estimate(name: str, terms: np.ndarray, w: np.ndarray) -> Estimate:
    value = float(terms.mean())
    half = Z_95 * terms.std(ddof=1) / np.sqrt(len(terms)) if len(terms) > 1 else np.inf
    return Estimate(name, value, value - half, value + half, len(terms), _effective_n(w))


def _weights(rewards, logging_propensities, target_propensities) -> tuple[np.ndarray, np.ndarray]:
    r = _array(rewards, "rewards")
    p_log = _array(logging_propensities, "logging_propensities", len(r))
    p_new = _array(target_propensities, "target_propensities", len(r))
    if len(r) == 0:
        raise ValueError("no logged decisions to evaluate")
    if np.any(p_log <= 0) or np.any(p_log > 1):
        bad = int(np.flatnonzero((p_log <= 0) | (p_log > 1))[0])
        raise ValueError(f"logging_propensities must lie in (0, 1]; row {bad} is {p_log[bad]}")
    if np.any(p_new < 0) or np.any(p_new > 1):
        bad = int(np.flatnonzero((p_new < 0) | (p_new > 1))[0])
        raise ValueError(f"target_propensities must lie in [0, 1]; row {bad} is {p_new[bad]}")
    return r, p_new / p_log


def _array(values, name: str, length: int | None = None) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if length is not None and len(a) != length:
        raise ValueError(f"{name} has {len(a)} rows, rewards has {length}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def _effective_n(w: np.ndarray) -> float:
    """Kish's effective sample size: how many unweighted rows the weighted sample is worth."""
    return float(w.sum() ** 2 / (w**2).sum()) if np.any(w) else 0.0
