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
Usage: python bench/catalog.py [--quick] [--seeds N]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
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
from experiments.factorised import FactorisedThompson  # noqa: E402
from experiments.simulation import logged_days  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BRANDS, PRODUCTS_PER_BRAND = 4, 5
IMPRESSIONS_PER_DAY = 10_000
HISTORY_VARIANTS, HISTORY_IMPRESSIONS = 12, 30_000
FACTORS = ("template", "colour", "aspect")
SPREAD = {"catalog": 0.35, "brand": 0.15, "product": 0.1}


def catalog_brief():
    brief = load_brief(REPO / "examples" / "waterbottle" / "brief.yaml")
    return brief.model_copy(update={"templates": list(TEMPLATES)})


class CatalogMarket:
    """True rates per (brand, product, factors): catalog effects plus the brand's and the product's deviations."""

    def __init__(self, brief, rng: np.random.Generator) -> None:
        self.grid = planning.factor_grid(brief)
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

    def rate(self, brand: str, product: str, f: VariantFactors) -> float:
        logit = self.base + sum(
            self.catalog[k][getattr(f, k)] + self.deviation[brand][k][getattr(f, k)]
            + self.deviation[product][k][getattr(f, k)]
            for k in FACTORS
        )  # fmt: skip
        return float(1 / (1 + np.exp(-logit)))


def history(market: CatalogMarket, rng: np.random.Generator, new_product: str) -> pd.DataFrame:
    """Every other product's uniform first design: 12 random variants, 30,000 impressions each."""
    rows = []
    for b, p in itertools.product(range(BRANDS), range(PRODUCTS_PER_BRAND + 1)):
        product = f"product-{b}-{p}"
        if product == new_product or (p == PRODUCTS_PER_BRAND and b != 0):
            continue  # 20 products in all (5 per brand); the 21st is the new one
        for i in rng.choice(len(market.grid), HISTORY_VARIANTS, replace=False):
            f = market.grid[i]
            clicks = rng.binomial(HISTORY_IMPRESSIONS, market.rate(f"brand-{b}", product, f))
            rows.append({"variant_id": f"{product}-{i}", "day": 20_000, **f.as_dict(), "camera": f.camera,
                         "trials": float(HISTORY_IMPRESSIONS), "successes": float(clicks),
                         "brand": f"brand-{b}", "product": product})  # fmt: skip
    return pd.DataFrame(rows)


def new_product_regret(brief, market, catalog, seed: int, generations: int = 2) -> float:
    """Clicks lost by the new product over its first generations against always running its best combination."""
    brand, product = "brand-0", f"product-0-{PRODUCTS_PER_BRAND}"
    brief = brief.model_copy(update={"brand": brand, "name": product})
    rng, sim = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    best = max(market.rate(brand, product, f) for f in market.grid)
    live, rows, tried, regret, day = pd.DataFrame(), [], set(), 0.0, 20_001
    variants: dict[str, VariantFactors] = {}
    for _ in range(generations):
        known = pd.DataFrame([{"variant_id": v, **f.as_dict()} for v, f in variants.items()])
        hist = planning.evidence(brief, known, pd.DataFrame(rows)) if rows else None
        decisions = planning.plan_generation(brief, live, hist, tried, rng, catalog)
        ids = []
        for d in decisions:
            vid = d.variant_id or f"v{len(variants)}"
            variants.setdefault(vid, d.factors)
            tried.add(d.factors.key)
            ids.append(vid)
        live = pd.DataFrame([{"variant_id": v, **variants[v].as_dict()} for v in ids])
        rates = np.array([market.rate(brand, product, variants[v]) for v in ids])
        for _ in range(brief.autoplay.days_per_generation):
            events = planning.evidence(brief, live, pd.DataFrame(rows)) if rows else planning.evidence(
                brief, live, pd.DataFrame(columns=["variant_id", "day", "impressions", "clicks"]))  # fmt: skip
            prior = planning.catalog_prior_means(brief, live, events, catalog)
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


if __name__ == "__main__":
    main()
