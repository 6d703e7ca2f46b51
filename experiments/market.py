"""A simulated ad market with hidden true rates per creative, for the sandbox and the benchmarks.

Each factor value (a template, a colour, an aspect, a turntable against a still) has a hidden effect on the logit of the
click-through rate, drawn once from the seed, so any variant the planner invents has a true rate.
Impressions follow spend; clicks, add-to-carts and purchases are binomial draws.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import date

import numpy as np
from scipy.special import erfinv

from creative.vocabulary import get_template

FACTORS = ("template", "colour", "aspect")


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class SimulatedMarket:
    """Hidden truth behind the sandbox platforms.

    ``effect_scale`` is the spread of random factor effects on the CTR logit (0.25 is a realistic
    market). ``boosts`` adds known effects, ``{("template", "podium"): 0.8}``, to build scenarios such
    as an easy market with one clearly best variant. ``seasonal`` gives a seasonal template an effect
    inside its window and another outside it, ``{"winter-holidays": (0.8, -0.4)}``: a Christmas scene
    that wins in December and loses in March.
    """

    def __init__(
        self,
        seed: int = 7,
        base_ctr: float = 0.012,
        effect_scale: float = 0.25,
        add_to_cart_rate: float = 0.22,
        purchase_rate: float = 0.30,
        average_order_value: float = 42.0,
        cpm: float = 9.0,
        boosts: Mapping[tuple[str, str], float] | None = None,
        seasonal: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.seed = seed
        self.base_ctr = base_ctr
        self.effect_scale = effect_scale
        self.add_to_cart_rate = add_to_cart_rate
        self.purchase_rate = purchase_rate
        self.average_order_value = average_order_value
        self.cpm = cpm
        self.boosts = dict(boosts or {})
        self.seasonal = dict(seasonal or {})
        self._rng = np.random.default_rng(seed)

    def effect(self, factor: str, value: str) -> float:
        """The hidden effect of one factor value, stable for a seed whatever order values appear in."""
        digest = hashlib.sha256(f"{self.seed}|{factor}|{value}".encode()).digest()
        u = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
        return self.effect_scale * float(np.sqrt(2) * erfinv(2 * u - 1)) + self.boosts.get((factor, value), 0.0)

    def true_ctr(self, factors: Mapping[str, str], day: date | None = None) -> float:
        """The true click rate of a creative on ``day`` (no seasonal effect without one)."""
        logit = _logit(self.base_ctr) + sum(self.effect(f, str(factors[f])) for f in FACTORS if f in factors)
        kind = str(factors.get("kind", "still"))
        if kind != "still":  # a still is the reference: adding kinds leaves every still's rate as it was
            logit += self.effect("kind", kind)
        template = str(factors.get("template", ""))
        if day is not None and template in self.seasonal:
            inside, outside = self.seasonal[template]
            logit += inside if get_template(template).in_season(day) else outside
        return _sigmoid(logit)

    def simulate_day(self, ads: list[Mapping], day: date | None = None) -> list[dict]:
        """One day of delivery for active ads: ``{"ad_id", "factors", "daily_budget"}`` (currency units)."""
        rows = []
        for ad in ads:
            budget = float(ad["daily_budget"])
            spend = budget * float(self._rng.uniform(0.92, 1.0))
            impressions = int(self._rng.poisson(spend / self.cpm * 1000)) if spend > 0 else 0
            clicks = int(self._rng.binomial(impressions, self.true_ctr(ad["factors"], day)))
            carts = int(self._rng.binomial(clicks, self.add_to_cart_rate))
            purchases = int(self._rng.binomial(carts, self.purchase_rate))
            value = float(np.round(self._rng.gamma(8.0, self.average_order_value / 8.0, purchases).sum(), 2))
            rows.append(
                {
                    "ad_id": ad["ad_id"],
                    "impressions": impressions,
                    "clicks": clicks,
                    "spend": round(spend if impressions else 0.0, 2),
                    "add_to_cart": carts,
                    "purchases": purchases,
                    "purchase_value": value,
                }
            )
        return rows
