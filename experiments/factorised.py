"""A factorised, contextual Thompson sampler: one Bayesian logistic regression over the creative's factors,
pooled across the catalog.

Per-variant posteriors learn nothing about a combination until it has run. Here the rate is modelled as
logit(rate) = intercept + template + camera + aspect + colour (one-hot, family and CIELAB) + placement + kind
+ season, so what a template earned with one colour informs it with every other colour, and combinations never
rendered get a score: the plan can propose them. Season is context: a seasonal template's effect inside its
window is learnt apart from its effect outside it (``vocabulary.season_level``, from the evidence's day).

Across the catalog, every factor effect also has a brand-level and a product-level deviation (partial
pooling): logit = catalog effects + brand's deviations + product's deviations, each level a Gaussian prior
around the level above, narrower further down (``POOLING``). A product's own evidence moves its effects
away from its brand's only as far as the evidence carries; a new product, with no evidence, is predicted by
its brand's and the catalog's effects. The posterior is the Laplace approximation around the L2-regularised
maximum (scikit-learn's LogisticRegression); a level's prior variance is set by scaling its columns, so one
regularisation strength serves every level. Thompson sampling draws whole coefficient vectors from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from creative.vocabulary import TEMPLATES, colour_family, placement_of, season_level
from experiments.evidence import arm_evidence
from rendering.colour import hex_to_lab

#: The creative's factors the model weighs (any the evidence has).
CATEGORICAL = ("template", "camera", "aspect", "colour", "colour_family", "placement", "kind", "season")
#: The levels evidence is pooled over, outermost first, with the prior variance of a level's deviations
#: from the level above (the catalog's own effects have ``prior_variance``): brands differ from the
#: catalog less than factors differ from each other, and a brand's products from the brand less again.
POOLING = (("brand", 0.25), ("product", 0.1))


EPOCH = date(1970, 1, 1)  # evidence days are integer days since it (``planning.day_index``)
SEASONAL = {name for name, t in TEMPLATES.items() if t.window is not None}


def with_factors(frame: pd.DataFrame, seasonal: bool = True) -> pd.DataFrame:
    """``frame`` with the factors derived from others: the colour's family; the aspect's placement; the kind
    (a row without one is a still, as every variant was before turntables); and, when ``seasonal`` and it has
    a template, the season on its ``day`` (on a day to come when there is none: in season)."""
    if "template" in frame.columns and "kind" not in frame.columns:
        frame = frame.assign(kind="still")
    if "aspect" in frame.columns and "placement" not in frame.columns:
        frame = frame.assign(placement=frame["aspect"].map(placement_of))
    if "colour" in frame.columns and "colour_family" not in frame.columns:
        families = {c: colour_family(c) for c in pd.unique(frame["colour"])}  # per colour, not per row
        frame = frame.assign(colour_family=frame["colour"].map(families))
    if seasonal and "template" in frame.columns and "season" not in frame.columns:
        if not SEASONAL.intersection(pd.unique(frame["template"])):
            return frame.assign(season="evergreen")
        days = frame["day"] if "day" in frame.columns else pd.Series(-1, index=frame.index)
        pairs = pd.DataFrame({"template": frame["template"], "day": days}).drop_duplicates()
        level = {(t, d): season_level(t, None if d < 0 else EPOCH + timedelta(days=int(d)))
                 for t, d in zip(pairs["template"], pairs["day"])}  # fmt: skip
        frame = frame.assign(season=[level[k] for k in zip(frame["template"], days)])
    return frame


class OneHot:
    """One-hot columns for categories (compared as strings), an unknown category scoring as all zeros; the
    columns follow scikit-learn's OneHotEncoder (column by column, categories sorted, named
    ``<column>_<category>``). It takes a DataFrame or a dict of equal-length sequences.

    Not OneHotEncoder itself: it validates its input on every call, and a plan transforms a few candidate
    rows hundreds of times, which made encoding most of fitting and planning.
    """

    def fit(self, frame: Mapping[str, Sequence]) -> OneHot:
        self.columns_ = list(frame.keys())
        self.categories_ = [sorted(set(_strings(frame[c]))) for c in self.columns_]
        return self

    def transform(self, frame: Mapping[str, Sequence]) -> np.ndarray:
        blocks = []
        for column, categories in zip(self.columns_, self.categories_):
            index = {c: i for i, c in enumerate(categories)}
            codes = np.array([index.get(v, -1) for v in _strings(frame[column])], dtype=int)
            block = np.zeros((len(codes), len(categories)))
            known = np.flatnonzero(codes >= 0)
            block[known, codes[known]] = 1.0
            blocks.append(block)
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> list[str]:
        names = input_features or self.columns_
        return [f"{n}_{c}" for n, categories in zip(names, self.categories_) for c in categories]


def _strings(values: Sequence) -> list[str]:
    return values.astype(str).tolist() if isinstance(values, pd.Series) else [str(v) for v in values]


class CreativeFeatures:
    """Factors to a design matrix: one-hot categories (unknown ones score as the average) plus CIELAB, then for
    each pooling level in the frame (brand, product) its intercept and its deviation of every factor,
    scaled so that a unit prior on the coefficient is the level's prior variance."""

    def __init__(
        self, pooling: tuple[tuple[str, float], ...] = POOLING, prior_variance: float = 1.0, seasonal: bool = True
    ) -> None:
        self.pooling = pooling
        self.prior_variance = prior_variance
        self.seasonal = seasonal

    def fit(self, frame: pd.DataFrame) -> CreativeFeatures:
        frame = with_factors(frame, self.seasonal)
        self.categorical_ = [c for c in CATEGORICAL if c in frame.columns]
        if not self.categorical_:
            raise ValueError(f"no creative factor columns; expected some of {list(CATEGORICAL)}")
        self.encoder_ = OneHot().fit(frame[self.categorical_])
        self.lab_ = "colour" in frame.columns
        self.levels_ = []  # (column, scale, encoder) per pooling level present
        for column, variance in self.pooling:
            if column in frame.columns:
                encoder = OneHot().fit(self._nested(frame, column))
                self.levels_.append((column, np.sqrt(variance / self.prior_variance), encoder))
        return self

    def __setstate__(self, state: dict) -> None:
        """A policy registered before ``OneHot`` holds scikit-learn encoders: the same columns and categories."""

        def own(encoder):
            if isinstance(encoder, OneHot):
                return encoder
            converted = OneHot()
            converted.columns_ = [str(c) for c in encoder.feature_names_in_]
            converted.categories_ = [[str(c) for c in categories] for categories in encoder.categories_]
            return converted

        if "encoder_" in state:
            state["encoder_"] = own(state["encoder_"])
            state["levels_"] = [(column, scale, own(encoder)) for column, scale, encoder in state["levels_"]]
        self.__dict__.update(state)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        frame = with_factors(frame, self.seasonal)
        parts = [self.encoder_.transform(frame[self.categorical_])]
        if self.lab_:
            lab = np.array([hex_to_lab(c) for c in frame["colour"]]) / 100.0
            parts.append(np.column_stack([lab, lab**2]))
        for column, scale, encoder in self.levels_:
            parts.append(scale * encoder.transform(self._nested(frame, column)))
        return np.hstack(parts)

    def _nested(self, frame: pd.DataFrame, column: str) -> dict[str, list[str]]:
        """The level's own intercept and each factor within it, as ``<level>|<factor level>`` categories."""
        owner = _strings(frame[column])
        nested = {column: owner}
        nested |= {f"{column}|{c}": [f"{o}|{v}" for o, v in zip(owner, _strings(frame[c]))] for c in self.categorical_}
        return nested


class FactorisedThompson:
    """Thompson sampling over a Bayesian logistic regression of the creative factors.

    ``fit`` takes events or daily aggregates with factor columns (any of ``CATEGORICAL``), ``successes``,
    ``trials``, optionally ``day``, and for evidence across the catalog the pooling levels' columns
    (``brand``, ``product``); candidates to score carry the same columns. Learned attributes: ``features_``,
    ``coef_`` (intercept first), ``cov_``.
    """

    def __init__(
        self,
        prior_variance: float = 1.0,
        n_draws: int = 4000,
        half_life_days: float | None = None,
        conversion_delay_days: float | None = None,
        random_state: int | None = None,
        pooling: tuple[tuple[str, float], ...] = POOLING,
        seasonal: bool = True,
    ) -> None:
        self.prior_variance = prior_variance
        self.pooling = pooling
        self.seasonal = seasonal
        self.n_draws = n_draws
        self.half_life_days = half_life_days
        self.conversion_delay_days = conversion_delay_days
        self.random_state = random_state

    def fit(self, events: pd.DataFrame, now: int | None = None) -> FactorisedThompson:
        events = with_factors(events, self.seasonal)
        keys = [c for c in (*CATEGORICAL, *(level for level, _ in self.pooling)) if c in events.columns]
        arms = arm_evidence(events, keys, now, self.half_life_days, self.conversion_delay_days)
        arms = arms[arms["trials"] > 0].reset_index(drop=True)
        self._rng = np.random.default_rng(self.random_state)
        self.features_ = CreativeFeatures(self.pooling, self.prior_variance, self.seasonal)
        self.features_.fit(arms if len(arms) else events)
        d = self.features_.transform(events.iloc[:1]).shape[1]
        if arms.empty or arms["successes"].sum() == 0 or (arms["trials"] - arms["successes"]).sum() == 0:
            # nothing to separate yet: the prior around the observed (or a small) base rate
            base = (arms["successes"].sum() + 0.5) / (arms["trials"].sum() + 1.0)
            self.coef_ = np.r_[np.log(base / (1 - base)), np.zeros(d)]
            self.cov_ = np.diag(np.r_[1.0, np.full(d, self.prior_variance)])
            return self
        x = self.features_.transform(arms)
        s = arms["successes"].to_numpy(float)
        t = np.maximum(arms["trials"].to_numpy(float), s)
        from sklearn.linear_model import LogisticRegression  # imported on use: most Dagster runs never fit

        model = LogisticRegression(C=self.prior_variance, max_iter=2000)
        model.fit(np.vstack([x, x]), np.r_[np.ones(len(x)), np.zeros(len(x))], sample_weight=np.r_[s, t - s])
        self.coef_ = np.r_[model.intercept_, model.coef_.ravel()]
        x1 = np.hstack([np.ones((len(x), 1)), x])
        p = 1 / (1 + np.exp(-x1 @ self.coef_))
        precision = (x1 * (t * p * (1 - p))[:, None]).T @ x1
        precision += np.diag(np.r_[1e-6, np.full(d, 1 / self.prior_variance)])
        self.cov_ = np.linalg.inv(precision)
        return self

    def _design(self, candidates: pd.DataFrame) -> np.ndarray:
        return np.hstack([np.ones((len(candidates), 1)), self.features_.transform(candidates)])

    def posterior_mean(self, candidates: pd.DataFrame) -> np.ndarray:
        """The rate at the posterior's centre, per candidate."""
        return 1 / (1 + np.exp(-self._design(candidates) @ self.coef_))

    def sample_rates(self, candidates: pd.DataFrame, n_draws: int | None = None) -> np.ndarray:
        """Posterior draws of every candidate's rate: shape (draws, candidates)."""
        coefs = self._rng.multivariate_normal(self.coef_, self.cov_, size=n_draws or self.n_draws, method="cholesky")
        return 1 / (1 + np.exp(-coefs @ self._design(candidates).T))

    def prob_best(self, candidates: pd.DataFrame) -> np.ndarray:
        draws = self.sample_rates(candidates)
        return np.bincount(draws.argmax(axis=1), minlength=len(candidates)) / len(draws)

    def allocate(self, candidates: pd.DataFrame, exploration_floor: float = 0.0) -> np.ndarray:
        """Traffic shares over ``candidates``: P(best) mixed with a floor, summing to 1."""
        n = len(candidates)
        if exploration_floor * n >= 1:
            raise ValueError("exploration_floor x number of candidates must stay below 1")
        return exploration_floor + (1 - exploration_floor * n) * self.prob_best(candidates)

    def propose(self, candidates: pd.DataFrame, k: int) -> list[tuple[int, float]]:
        """Pick ``k`` candidates one after another, each by one Thompson draw among those not yet picked.

        Returns (row position, propensity) pairs: the propensity is the probability that a draw picks that
        candidate at its step, estimated from the same posterior, and is logged for offline evaluation.
        """
        draws = self.sample_rates(candidates)
        available = np.ones(len(candidates), bool)
        picked = []
        for _ in range(min(k, len(candidates))):
            masked = np.where(available, draws, -np.inf)
            winners = masked.argmax(axis=1)
            propensities = np.bincount(winners, minlength=len(candidates)) / len(draws)
            choice = int(winners[self._rng.integers(len(draws))])
            picked.append((choice, float(propensities[choice])))
            available[choice] = False
        return picked
