"""Regret benchmark: our policies against uniform A/B testing, A/B-then-ship and MABWiser's Thompson sampling.

Simulated markets, one per scenario, run day by day: each policy splits a day's impressions over the
available creatives, sees that day's clicks (or conversions), and splits the next day. Regret is what
the day's best creative would have earned minus what the split earned, summed over days and averaged
over seeds. Scenarios:
  stationary   10 creatives, fixed rates
  fatigue      a creative's rate falls with its own cumulative impressions (creative fatigue)
  shift        the rates are redrawn halfway (a season, a competitor, a price change)
  factorised   200 combinations of 8 templates x 5 colours x 5 aspects with additive effects
  delayed      conversion rate with purchases arriving days after the click; new creatives launch midway
Prints a table, a plot (bench/out/regret.png) and one JSON line per figure (see DESIGN.md), including the
time to fit the policies on 10,000,000 events. Usage: python bench/regret.py [--quick] [--seeds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from figures import figure  # noqa: E402

from experiments.factorised import FactorisedThompson  # noqa: E402
from experiments.thompson import BetaThompson  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
COLOURS = ["#D7263D", "#1F6FEB", "#2E7D32", "#F5F5F0", "#222222"]
ASPECTS = ["1:1", "4:5", "9:16", "16:9", "2:3"]


def _logit_rates(rng, n, centre=0.02, spread=0.35):
    return 1 / (1 + np.exp(-(np.log(centre / (1 - centre)) + rng.normal(0, spread, n))))


# ---------------------------------------------------------------- markets


@dataclass
class Market:
    """Arms with true rates that may change with the day and with each arm's exposure."""

    base: np.ndarray
    days: int
    impressions_per_day: int
    rng: np.random.Generator
    fatigue: float = 0.0  # share of the rate lost at full fatigue
    fatigue_scale: float = 1.0  # impressions at which fatigue is 63% complete
    shift_day: int | None = None
    shifted: np.ndarray | None = None
    launch_day: np.ndarray | None = None  # arms become available on this day
    delay_days: float | None = None  # mean conversion delay
    factors: pd.DataFrame | None = None
    exposure: np.ndarray = field(init=False)
    pending: list = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.exposure = np.zeros(len(self.base))
        if self.launch_day is None:
            self.launch_day = np.zeros(len(self.base), int)

    def available(self, day: int) -> np.ndarray:
        return self.launch_day <= day

    def rates(self, day: int) -> np.ndarray:
        rates = self.shifted if self.shift_day is not None and day >= self.shift_day else self.base
        if self.fatigue:
            rates = rates * (1 - self.fatigue * (1 - np.exp(-self.exposure / self.fatigue_scale)))
        return rates

    def play(self, day: int, shares: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Serve a day; returns impressions and the successes observed today per arm, and the day's regret."""
        rates, open_ = self.rates(day), self.available(day)
        shares = np.where(open_, shares, 0.0)
        shares = shares / shares.sum()
        impressions = self.rng.multinomial(self.impressions_per_day, shares)
        successes = self.rng.binomial(impressions, rates)
        regret = self.impressions_per_day * (rates[open_].max() - float(shares @ rates))
        self.exposure += impressions
        if self.delay_days:  # each success is observed on its own later day
            delays = [self.rng.geometric(1 / self.delay_days, size=s) - 1 for s in successes]
            self.pending.append((day, delays))
            observed = np.zeros(len(rates))
            for sent, per_arm in self.pending:
                for arm, lags in enumerate(per_arm):
                    observed[arm] += np.sum(sent + lags == day)
            successes = observed
        return impressions, successes, regret


def scenario(name: str, seed: int) -> Market:
    rng = np.random.default_rng(seed)
    days = 30
    if name == "stationary":
        return Market(_logit_rates(rng, 10), days, 10_000, rng)
    if name == "fatigue":
        return Market(_logit_rates(rng, 10), days, 10_000, rng, fatigue=0.6, fatigue_scale=40_000)
    if name == "shift":
        base = _logit_rates(rng, 10)
        return Market(base, days, 10_000, rng, shift_day=days // 2, shifted=rng.permutation(base))
    if name == "factorised":
        combos = [(f"t{t}", c, a) for t in range(8) for c in COLOURS for a in ASPECTS]
        grid = pd.DataFrame(combos, columns=["template", "colour", "aspect"])
        effects = {v: rng.normal(0, 0.3) for col in grid.columns for v in grid[col].unique()}
        logit = np.log(0.02 / 0.98) + grid.apply(lambda r: sum(effects[v] for v in r), axis=1).to_numpy()
        return Market(1 / (1 + np.exp(-logit)), days, 10_000, rng, factors=grid)
    if name == "delayed":
        base = _logit_rates(rng, 10, centre=0.03)
        launch = np.r_[np.zeros(5, int), np.full(5, days // 3)]
        return Market(base, days, 3_000, rng, launch_day=launch, delay_days=4.0)
    raise ValueError(name)


# ---------------------------------------------------------------- policies


class Uniform:
    name = "uniform A/B"

    def shares(self, day, market):
        return market.available(day).astype(float)

    def update(self, day, impressions, successes):
        pass


class ABThenShip(Uniform):
    """Uniform for the first third of the horizon, then everything to the empirical winner."""

    name = "A/B then ship"

    def __init__(self, arms: int, days: int) -> None:
        self.n, self.s, self.test_days, self.winner = np.zeros(arms), np.zeros(arms), days // 3, None

    def shares(self, day, market):
        if day < self.test_days or self.winner is None and not market.available(day).all():
            return market.available(day).astype(float)
        if self.winner is None or not market.available(day)[self.winner]:
            self.winner = int(np.argmax(np.where(market.available(day), self.s / np.maximum(self.n, 1), -1)))
        return np.eye(len(self.n))[self.winner]

    def update(self, day, impressions, successes):
        self.n += impressions
        self.s += successes


class MabwiserTS(Uniform):
    """MABWiser's Thompson sampling, batched: a day's split is the share of 200 posterior draws each arm wins."""

    name = "MABWiser TS"

    def __init__(self, arms: int, seed: int) -> None:
        from mabwiser.mab import MAB, LearningPolicy

        self.arms = list(range(arms))
        self.mab = MAB(arms=self.arms, learning_policy=LearningPolicy.ThompsonSampling(), seed=seed)
        self.fitted = False

    def shares(self, day, market):
        if not self.fitted:
            return market.available(day).astype(float)
        open_ = market.available(day)
        wins = np.zeros(len(self.arms))
        for _ in range(200):
            draw = self.mab.predict_expectations()
            wins[max((a for a in self.arms if open_[a]), key=draw.get)] += 1
        return wins + 1e-9

    def update(self, day, impressions, successes):
        decisions = np.repeat(self.arms, impressions.astype(int))
        rewards = np.zeros(len(decisions), int)
        starts = np.r_[0, np.cumsum(impressions.astype(int))[:-1]]
        for arm, start in enumerate(starts):  # the day's successes, attributed within each arm's block
            rewards[start : start + min(int(successes[arm]), int(impressions[arm]))] = 1
        if len(decisions):
            (self.mab.partial_fit if self.fitted else self.mab.fit)(decisions, rewards)
            self.fitted = True


class Ours(Uniform):
    """Our BetaThompson (or FactorisedThompson) refitted daily on the day-by-day evidence."""

    def __init__(self, name: str, make, factors: pd.DataFrame | None = None, floor: float = 0.0) -> None:
        self.name, self.make, self.factors, self.floor = name, make, factors, floor
        self.rows: list[pd.DataFrame] = []

    def shares(self, day, market):
        open_ = market.available(day)
        if not self.rows:
            return open_.astype(float)
        unseen = self._frame(day, np.zeros(len(open_)), np.zeros(len(open_)))  # every open arm, even untried
        events = pd.concat([*self.rows, unseen[open_]], ignore_index=True)
        events = events[events["variant_id"].isin(unseen["variant_id"][open_])]
        policy = self.make().fit(events, now=day)
        shares = np.zeros(len(open_))
        if self.factors is not None:
            shares[open_] = policy.allocate(self.factors[open_], self.floor)
        else:
            got = policy.allocate(self.floor)
            shares[open_] = got.reindex(unseen["variant_id"][open_]).to_numpy()
        return shares

    def _frame(self, day, impressions, successes) -> pd.DataFrame:
        frame = pd.DataFrame({"trials": impressions, "successes": successes, "day": day})
        frame["variant_id"] = [f"a{i}" for i in range(len(impressions))]
        if self.factors is not None:
            frame = pd.concat([frame, self.factors.reset_index(drop=True)], axis=1)
        return frame

    def update(self, day, impressions, successes):
        frame = self._frame(day, impressions, successes)
        self.rows.append(frame[frame["trials"] > 0])


def policies(name: str, market: Market, seed: int) -> list:
    k = len(market.base)
    ts = lambda **kw: lambda: BetaThompson(n_draws=4000, random_state=seed, **kw)  # noqa: E731
    out = [Uniform(), ABThenShip(k, market.days), MabwiserTS(k, seed), Ours("our TS", ts())]
    if name in ("fatigue", "shift"):
        out.append(Ours("our TS, discounted", ts(half_life_days=5.0)))
    if name == "delayed":
        out.append(Ours("our TS, delay-aware", ts(conversion_delay_days=market.delay_days)))
    if name == "factorised":
        out.append(
            Ours("our factorised TS", lambda: FactorisedThompson(n_draws=2000, random_state=seed), market.factors)
        )
    return out


def run(name: str, seed: int) -> dict[str, np.ndarray]:
    """Cumulative regret per day for each policy, each on its own copy of the same market (same seed)."""
    curves = {}
    for policy in policies(name, scenario(name, seed), seed):
        market = scenario(name, seed)
        market.rng = np.random.default_rng([seed, 1])
        regret = []
        for day in range(market.days):
            impressions, successes, r = market.play(day, policy.shares(day, market))
            policy.update(day, impressions, successes)
            regret.append(r)
        curves[policy.name] = np.cumsum(regret)
    return curves


def fit_time(n: int = 10_000_000) -> tuple[float, float]:
    """Seconds to fit the per-variant and the factorised policy on n single events (30 days, 200 variants)."""
    rng = np.random.default_rng(0)
    grid = pd.DataFrame([(f"t{t}", c, a) for t in range(8) for c in COLOURS for a in ASPECTS])
    pick = rng.integers(len(grid), size=n)
    events = pd.DataFrame(
        {
            "variant_id": pd.Categorical.from_codes(pick, [f"v{i}" for i in range(len(grid))]),
            "template": pd.Categorical.from_codes(pick // 25, [f"t{t}" for t in range(8)]),
            "colour": pd.Categorical.from_codes(pick // 5 % 5, COLOURS),
            "aspect": pd.Categorical.from_codes(pick % 5, ASPECTS),
            "successes": (rng.random(n) < 0.02).astype(np.int8),
            "trials": np.ones(n, np.int8),
            "day": rng.integers(30, size=n).astype(np.int16),
        }
    )
    started = time.perf_counter()
    BetaThompson(half_life_days=7).fit(events[["variant_id", "successes", "trials", "day"]])
    variant_s = time.perf_counter() - started
    started = time.perf_counter()
    FactorisedThompson(half_life_days=7).fit(events.drop(columns="variant_id"))
    return variant_s, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds: within 2 minutes")
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args()
    seeds = args.seeds or (3 if args.quick else 20)
    names = ["stationary", "fatigue", "shift", "factorised", "delayed"]
    results: dict[str, dict[str, list[np.ndarray]]] = {n: {} for n in names}
    started = time.perf_counter()
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("simulating markets", total=len(names) * seeds)
        for name in names:
            for seed in range(seeds):
                for policy, curve in run(name, seed).items():
                    results[name].setdefault(policy, []).append(curve)
                progress.advance(task)
    mean = {n: {p: np.mean(c, axis=0) for p, c in r.items()} for n, r in results.items()}
    final = {n: {p: float(c[-1]) for p, c in r.items()} for n, r in mean.items()}
    sem = {
        n: {p: float(np.std([x[-1] for x in c]) / np.sqrt(len(c))) for p, c in r.items()} for n, r in results.items()
    }

    table = Table(title=f"cumulative regret after 30 days, mean over {seeds} seeds (clicks or purchases lost)")
    table.add_column("scenario")
    policies_seen = list(dict.fromkeys(p for r in final.values() for p in r))
    for p in policies_seen:
        table.add_column(p, justify="right")
    for n in names:
        table.add_row(n, *[f"{final[n][p]:.0f} ±{sem[n][p]:.0f}" if p in final[n] else "" for p in policies_seen])
    Console(width=160).print(table)

    OUT.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6))
    for ax, n in zip(axes, names):
        for p, c in mean[n].items():
            ax.plot(np.arange(1, len(c) + 1), c, label=p)
        ax.set_title(n)
        ax.set_xlabel("day")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("cumulative regret")
    fig.tight_layout()
    fig.savefig(OUT / "regret.png", dpi=120)
    print(f"plot: {OUT / 'regret.png'}  ({time.perf_counter() - started:.0f} s of simulation)")

    note = f"mean cumulative regret over {seeds} seeds, 30 days"
    ratio = lambda n, a, b: final[n][a] / final[n][b]  # noqa: E731
    figure("regret_ratio_stationary_ts_vs_uniform", ratio("stationary", "our TS", "uniform A/B"), "ratio", note)
    for n in ("fatigue", "shift"):
        figure(f"regret_ratio_{n}_ours_vs_uniform", ratio(n, "our TS, discounted", "uniform A/B"), "ratio", note)
    figure("regret_ratio_fatigue_ours_vs_ts", ratio("fatigue", "our TS, discounted", "our TS"), "ratio", note)
    figure("regret_ratio_shift_ours_vs_ts", ratio("shift", "our TS, discounted", "our TS"), "ratio", note)
    figure("regret_ratio_factorised_vs_variant_ts", ratio("factorised", "our factorised TS", "our TS"), "ratio", note)
    figure("regret_ratio_delayed_aware_vs_ts", ratio("delayed", "our TS, delay-aware", "our TS"), "ratio", note)
    variant_s, factorised_s = fit_time()
    figure("fit_10m_events_s", variant_s, "s", "BetaThompson, 10,000,000 single events, 200 variants, discounted")
    figure("fit_10m_events_factorised_s", factorised_s, "s", "FactorisedThompson on the same events")


if __name__ == "__main__":
    main()
