"""Seasonal templates: a date window, planned only inside it, paused when it ends, and learnt as context."""

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from creative.brief import load_brief
from creative.vocabulary import TEMPLATES, SeasonWindow, Template, season_level
from experiments import planning
from experiments.factorised import FactorisedThompson
from experiments.market import SimulatedMarket
from tests.conftest import EXAMPLE_BRIEF
from tests.experiments.test_planning import daily

BRIEF = load_brief(EXAMPLE_BRIEF).model_copy(update={"templates": ["studio", "podium", "winter-holidays"]})
CHRISTMAS, SPRING = date(2026, 12, 10), date(2027, 3, 10)


def test_a_window_runs_across_new_year_and_a_bad_day_is_named():
    window = SeasonWindow(start="12-20", end="01-06")
    assert window.contains(date(2026, 12, 31)) and window.contains(date(2027, 1, 2))
    assert not window.contains(date(2027, 1, 7)) and not window.contains(date(2026, 12, 19))
    with pytest.raises(ValidationError, match="'13-01' is not a day of the year"):
        SeasonWindow(start="13-01", end="01-06")
    with pytest.raises(ValidationError, match="a seasonal template, and only one, has a window"):
        Template(name="x", description="", kind="seasonal")


def test_autoplay_templates_json_lists_every_template_with_its_kind_and_window():
    from pipelines.cli import app

    out = CliRunner().invoke(app, ["templates", "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.output)}
    assert set(rows) == set(TEMPLATES) and all(set(r) == {"name", "kind", "window"} for r in rows.values())
    seasonal = {name: r["window"] for name, r in rows.items() if r["kind"] == "seasonal"}
    assert len(seasonal) >= 3 and seasonal["valentines"] == {"start": "01-25", "end": "02-14"}
    assert rows["studio"] == {"name": "studio", "kind": "studio", "window": None}
    assert {n for n, r in rows.items() if r["kind"] == "lifestyle"} == {"interior", "courtyard", "forest", "sunset"}
    assert {n for n, r in rows.items() if r["kind"] == "bundle"} == {"bundle", "bundle-podium"}


def test_the_planner_proposes_a_seasonal_template_only_inside_its_window():
    def planned(today):
        return {d.factors.template for seed in range(6)
                for d in planning.plan_generation(BRIEF, pd.DataFrame(), None, set(), np.random.default_rng(seed),
                                                  today=today)}  # fmt: skip

    assert "winter-holidays" in planned(CHRISTMAS)
    assert "winter-holidays" not in planned(SPRING) and planned(SPRING) == {"studio", "podium"}


def test_a_kept_seasonal_winner_is_retired_when_its_season_is_over():
    grid = planning.factor_grid(BRIEF, CHRISTMAS)
    winter = [f for f in grid if f.template == "winter-holidays"][:2]
    others = [f for f in grid if f.template != "winter-holidays"][:2]
    live = pd.DataFrame([{"variant_id": f"v{i}", **f.as_dict()} for i, f in enumerate(winter + others)])
    clicks = [900, 800, 100, 100]  # the winter scenes won in December
    history = planning.evidence(BRIEF, live, daily([(f"v{i}", "2026-12-20", 20_000, c) for i, c in enumerate(clicks)]))
    tried = {f.key for f in winter + others}
    in_season = planning.plan_generation(BRIEF, live, history, tried, np.random.default_rng(0), today=CHRISTMAS)
    assert {"v0", "v1"} <= {d.variant_id for d in in_season if d.kind == "keep"}
    after = planning.plan_generation(BRIEF, live, history, tried, np.random.default_rng(0), today=date(2027, 1, 8))
    assert not {d.variant_id for d in after} & {"v0", "v1"}
    assert all(d.factors.template != "winter-holidays" for d in after)


def seasonal_evidence(rng: np.random.Generator) -> pd.DataFrame:
    """A winter scene that doubles the click rate inside its window and halves it outside, beside a studio
    scene at a steady 1%, over days in November, December and January."""
    market = SimulatedMarket(seed=3, effect_scale=0.0, base_ctr=0.01, seasonal={"winter-holidays": (0.7, -0.7)})
    rows = []
    for day in pd.date_range("2026-11-01", "2027-01-31", freq="3D"):
        for i, template in enumerate(("studio", "winter-holidays")):
            rate = market.true_ctr({"template": template, "colour": "#1F6FEB", "aspect": "1:1"}, day.date())
            rows.append((f"v{i}", day.isoformat(), 5_000, float(rng.binomial(5_000, rate))))
    variants = pd.DataFrame({"variant_id": ["v0", "v1"], "template": ["studio", "winter-holidays"],
                             "colour": "#1F6FEB", "aspect": "1:1"})  # fmt: skip
    return planning.evidence(BRIEF, variants, daily(rows))


@pytest.mark.parametrize("seasonal", [True, False])
def test_season_is_context_a_winter_scene_is_judged_by_the_day_it_would_run(seasonal):
    history = seasonal_evidence(np.random.default_rng(0))
    model = FactorisedThompson(seasonal=seasonal).fit(history)
    factors = [f for f in planning.factor_grid(BRIEF) if f.colour == "#1F6FEB" and f.aspect == "1:1"]
    factors = [f for f in factors if f.template in ("studio", "winter-holidays")]
    december, march = (model.posterior_mean(planning.candidates(BRIEF, factors, day)) for day in (CHRISTMAS, SPRING))
    studio, winter = (
        [f.template for f in factors].index("studio"),
        [f.template for f in factors].index("winter-holidays"),
    )
    if seasonal:  # with the season as context: the winter scene wins in December and loses in March
        assert december[winter] > 1.5 * december[studio] and march[winter] < 0.75 * march[studio]
    else:  # blind: one effect for the winter scene whatever the day
        assert december[winter] == pytest.approx(march[winter])


def test_season_levels_and_the_markets_seasonal_truth():
    assert season_level("studio", CHRISTMAS) == "evergreen"
    assert season_level("winter-holidays", CHRISTMAS) == "winter-holidays:in"
    assert season_level("winter-holidays", SPRING) == "winter-holidays:out"
    market = SimulatedMarket(seed=1, effect_scale=0.0, seasonal={"winter-holidays": (0.8, -0.4)})
    factors = {"template": "winter-holidays", "colour": "#1F6FEB", "aspect": "1:1"}
    assert market.true_ctr(factors, CHRISTMAS) > market.true_ctr(factors) > market.true_ctr(factors, SPRING)
