"""Catalog scenarios of the regret benchmark: does what a brand's other products learnt help its next one?

A simulated catalog of 20 products over 4 brands whose click rates share factor effects (template, backdrop
colour, aspect) at catalog level, with brand-level and product-level deviations. Every product ran a
uniform design first. Then a 21st product of one of the brands runs its first two generations through the
loop's own planning (``experiments.planning``: plan, daily allocation with the budget's shares), once with
the catalog's evidence (pooled model: the proposer and the allocation's priors) and once cold, on the same
market and seed. Figures (JSON lines):
  regret_ratio_catalog_vs_cold   the 21st product's regret over two generations, catalog / cold (goal <= 0.5)
  factor_interval_coverage       share of the pooled model's 95% intervals on catalog-level factor contrasts
                                 that hold the simulated truth, over seeds (goal >= 0.9)
  ope_logging_policy_in_interval_share
                                 share of seeds where SNIPS of the loop's logging policy on its own per-day logs
                                 (``experiments.simulation``) holds its on-policy value in its 95% interval
                                 (goal >= 0.9)
  regret_ratio_seasonal_context_vs_blind
                                 the same catalog with a winter-holidays scene that wins inside its window and
                                 loses outside it; the catalog ran from November through Christmas. The 21st
                                 product's regret over its first two generations, from 28 December into January,
                                 planned with the day and the season as context / by a learner blind to both
                                 (no season feature, no window) (goal <= 0.7)
Usage: python bench/catalog.py [--quick] [--seeds N]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from figures import figure  # noqa: E402

from creative.brief import load_brief  # noqa: E402
from creative.vocabulary import TEMPLATES, VariantFactors  # noqa: E402
from experiments import planning  # noqa: E402
from experiments.evaluation import snips_counts  # noqa: E402
from experiments.factorised import EPOCH, FactorisedThompson  # noqa: E402
from experiments.simulation import logged_days  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BRANDS, PRODUCTS_PER_BRAND = 4, 5
IMPRESSIONS_PER_DAY = 10_000
HISTORY_VARIANTS, HISTORY_IMPRESSIONS = 12, 30_000
FACTORS = ("template", "colour", "aspect")
SPREAD = {"catalog": 0.35, "brand": 0.15, "product": 0.1}
SEASONAL = {"winter-holidays": (0.6, -0.6)}  # inside its window, outside it: on the CTR logit
SEASON_HISTORY = (date(2026, 11, 1), date(2026, 12, 27))  # the catalog's runs: out of the window, then in it
SEASON_START = date(2026, 12, 28)  # the new product's first day: its two generations run into January


def catalog_brief(seasonal: bool = False):
    """Every studio template (the scenario the goals were set on); ``seasonal`` adds the winter holidays scene."""
    brief = load_brief(REPO / "examples" / "waterbottle" / "brief.yaml")
    templates = [t for t, template in TEMPLATES.items() if template.kind == "studio"]
    return brief.model_copy(update={"templates": templates + (list(SEASONAL) if seasonal else [])})


class CatalogMarket:
    """True rates per (brand, product, factors): catalog effects plus the brand's and the product's deviations."""

    def __init__(self, brief, rng: np.random.Generator, seasonal: dict | None = None) -> None:
        self.grid = planning.factor_grid(brief)
        self.seasonal = seasonal or {}
        levels = {f: sorted({getattr(g, f) for g in self.grid}) for f in FACTORS}
        self.catalog = {f: dict(zip(levels[f], rng.normal(0, SPREAD["catalog"], len(levels[f])))) for f in FACTORS}
        self.deviation = {}
        for b in range(BRANDS):
            self.deviation[f"brand-{b}"] = {f: dict(zip(levels[f], rng.normal(0, SPREAD["brand"], len(levels[f]))))
                                            for f in FACTORS}  # fmt: skip
        for b, p in itertools.product(range(BRANDS), range(PRODUCTS_PER_BRAND + 1)):
            self.deviation[f"product-{b}-{p}"] = {
                f: dict(zip(levels[f], rng.normal(0, SPREAD["product"], len(levels[f])))) for f in FACTORS
            }
        self.base = np.log(0.02 / 0.98)

    def rate(self, brand: str, product: str, f: VariantFactors, day: int | None = None) -> float:
        logit = self.base + sum(
            self.catalog[k][getattr(f, k)] + self.deviation[brand][k][getattr(f, k)]
            + self.deviation[product][k][getattr(f, k)]
            for k in FACTORS
        )  # fmt: skip
        if f.template in self.seasonal and day is not None:
            inside, outside = self.seasonal[f.template]
            logit += inside if TEMPLATES[f.template].in_season(EPOCH + timedelta(days=day)) else outside
        return float(1 / (1 + np.exp(-logit)))


def history(
    market: CatalogMarket, rng: np.random.Generator, new_product: str, days: tuple[date, date] | None = None
) -> pd.DataFrame:
    """Every other product's uniform first design: 12 random variants, 30,000 impressions each, on one day
    (or each on a random day of ``days``)."""
    span = None if days is None else ((days[0] - EPOCH).days, (days[1] - EPOCH).days + 1)
    rows = []
    for b, p in itertools.product(range(BRANDS), range(PRODUCTS_PER_BRAND + 1)):
        product = f"product-{b}-{p}"
        if product == new_product or (p == PRODUCTS_PER_BRAND and b != 0):
            continue  # 20 products in all (5 per brand); the 21st is the new one
        for i in rng.choice(len(market.grid), HISTORY_VARIANTS, replace=False):
            f = market.grid[i]
            day = 20_000 if span is None else int(rng.integers(*span))
            clicks = rng.binomial(HISTORY_IMPRESSIONS, market.rate(f"brand-{b}", product, f, day))
            rows.append({"variant_id": f"{product}-{i}", "day": day, **f.as_dict(), "camera": f.camera,
                         "trials": float(HISTORY_IMPRESSIONS), "successes": float(clicks),
                         "brand": f"brand-{b}", "product": product})  # fmt: skip
    return pd.DataFrame(rows)


def new_product_regret(
    brief, market, catalog, seed: int, generations: int = 2, start: date | None = None, dated: bool = True
) -> float:
    """Clicks lost by the new product over its first generations against always running its best combination
    of the day. ``start``: its first day; ``dated``: the planner and the allocation are told the day (and so
    the season), else they plan as if every day were the same."""
    brand, product = "brand-0", f"product-0-{PRODUCTS_PER_BRAND}"
    brief = brief.model_copy(update={"brand": brand, "name": product})
    rng, sim = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    day = 20_001 if start is None else (start - EPOCH).days
    live, rows, tried, regret = pd.DataFrame(), [], set(), 0.0
    variants: dict[str, VariantFactors] = {}
    for _ in range(generations):
        today = None if start is None or not dated else EPOCH + timedelta(days=day)
        known = pd.DataFrame([{"variant_id": v, **f.as_dict()} for v, f in variants.items()])
        hist = planning.evidence(brief, known, pd.DataFrame(rows)) if rows else None
        decisions = planning.plan_generation(brief, live, hist, tried, rng, catalog, today)
        ids = []
        for d in decisions:
            vid = d.variant_id or f"v{len(variants)}"
            variants.setdefault(vid, d.factors)
            tried.add(d.factors.key)
            ids.append(vid)
        live = pd.DataFrame([{"variant_id": v, **variants[v].as_dict()} for v in ids])
        for _ in range(brief.autoplay.days_per_generation):
            today = None if start is None or not dated else EPOCH + timedelta(days=day)
            rates = np.array([market.rate(brand, product, variants[v], day) for v in ids])
            best = max(market.rate(brand, product, f, day) for f in market.grid)
            events = planning.evidence(brief, live, pd.DataFrame(rows)) if rows else planning.evidence(
                brief, live, pd.DataFrame(columns=["variant_id", "day", "impressions", "clicks"]))  # fmt: skip
            prior = planning.catalog_prior_means(brief, live, events, catalog, today)
            shares = planning.allocate(brief, events, rng, prior).reindex(ids).fillna(0).to_numpy()
            shares = shares / shares.sum()
            impressions = sim.multinomial(IMPRESSIONS_PER_DAY, shares)
            clicks = sim.binomial(impressions, rates)
            regret += IMPRESSIONS_PER_DAY * (best - float(shares @ rates))
            stamp = pd.Timestamp("1970-01-01") + pd.Timedelta(days=day)
            rows += [{"variant_id": v, "day": stamp, "impressions": float(n), "clicks": float(c), "purchases": 0.0,
                      "spend": 0.0, "purchase_value": 0.0} for v, n, c in zip(ids, impressions, clicks)]  # fmt: skip
            day += 1
    return regret


def contrast_coverage(market: CatalogMarket, catalog: pd.DataFrame) -> tuple[int, int]:
    """How many catalog-level contrasts (each template, colour and aspect against its factor's first level)
    the pooled model's 95% interval holds, of how many."""
    model = FactorisedThompson().fit(catalog)
    names = list(model.features_.encoder_.get_feature_names_out(model.features_.categorical_))
    held = total = 0
    for factor in FACTORS:
        levels = sorted(market.catalog[factor])
        ref = names.index(f"{factor}_{levels[0]}") + 1  # + 1: the intercept comes first
        for level in levels[1:]:
            j = names.index(f"{factor}_{level}") + 1
            estimate = model.coef_[j] - model.coef_[ref]
            sd = np.sqrt(model.cov_[j, j] + model.cov_[ref, ref] - 2 * model.cov_[j, ref])
            truth = market.catalog[factor][level] - market.catalog[factor][levels[0]]
            held += abs(estimate - truth) <= 1.96 * sd
            total += 1
    return held, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds: within 2 minutes")
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args()
    seeds = args.seeds or (3 if args.quick else 12)
    brief = catalog_brief()
    warm, cold, held, total = [], [], 0, 0
    started = time.perf_counter()
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("catalog scenarios", total=seeds)
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            market = CatalogMarket(brief, rng)
            catalog = history(market, rng, f"product-0-{PRODUCTS_PER_BRAND}")
            warm.append(new_product_regret(brief, market, catalog, seed))
            cold.append(new_product_regret(brief, market, None, seed))
            h, t = contrast_coverage(market, catalog)
            held, total = held + h, total + t
            progress.advance(task)
    print(f"{seeds} seeds in {time.perf_counter() - started:.0f} s: regret with the catalog {np.mean(warm):.0f}, "
          f"cold {np.mean(cold):.0f} clicks over two generations")  # fmt: skip
    note = f"{seeds} seeds; 20 products over 4 brands; the 21st product's first 2 generations of 4 days"
    figure("regret_ratio_catalog_vs_cold", float(np.mean(warm) / np.mean(cold)), "ratio", note)
    figure("factor_interval_coverage", held / total, "share", f"{total} catalog-level contrasts over {seeds} seeds")
    ope_seeds, inside = seeds * 5, 0
    for seed in range(ope_seeds):
        rates = pd.Series(np.random.default_rng(seed).uniform(0.015, 0.04, 6), index=[f"v{i}" for i in range(6)])
        log, truth = logged_days(brief, rates, days=8, impressions_per_day=10_000, seed=seed)
        inside += snips_counts(log["successes"], log["trials"], log["propensity"], log["propensity"]).contains(truth)
    figure("ope_logging_policy_in_interval_share", inside / ope_seeds, "share",
           f"{ope_seeds} seeds, 6 variants, 8 days of the loop's allocation with its budget step")  # fmt: skip
    seasonal_brief, context, blind = catalog_brief(seasonal=True), [], []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 7])
        market = CatalogMarket(seasonal_brief, rng, SEASONAL)
        catalog = history(market, rng, f"product-0-{PRODUCTS_PER_BRAND}", SEASON_HISTORY)
        context.append(new_product_regret(seasonal_brief, market, catalog, seed, start=SEASON_START))
        blind.append(new_product_regret(_blind(seasonal_brief), market, catalog, seed, start=SEASON_START, dated=False))
    print(f"seasonal: regret with the season as context {np.mean(context):.0f}, blind {np.mean(blind):.0f} clicks")
    note = (
        f"{seeds} seeds; winter-holidays {SEASONAL['winter-holidays']} on the logit in / out of its window; "
        f"catalog from {SEASON_HISTORY[0]} to {SEASON_HISTORY[1]}, the 21st product from {SEASON_START}"
    )
    figure("regret_ratio_seasonal_context_vs_blind", float(np.mean(context) / np.mean(blind)), "ratio", note)


def _blind(brief):
    return brief.model_copy(update={"autoplay": brief.autoplay.model_copy(update={"seasonal_context": False})})


if __name__ == "__main__":
    main()
