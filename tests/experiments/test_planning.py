import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creative.brief import load_brief
from creative.vocabulary import VariantFactors, get_template
from experiments import planning
from rendering.colour import ciede2000, hex_to_lab
from tests.conftest import EXAMPLE_BRIEF

BRIEF = load_brief(EXAMPLE_BRIEF)


def daily(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """(variant, ISO day, impressions, clicks) rows as the event store's variant_daily returns them."""
    frame = pd.DataFrame(rows, columns=["variant_id", "day", "impressions", "clicks"])
    frame["day"] = pd.to_datetime(frame["day"])
    return frame.assign(purchases=frame["clicks"] * 0.05, spend=0.0, add_to_cart=0.0, purchase_value=0.0)


def test_first_generation_draws_distinct_combinations_with_their_inclusion_probability():
    decisions = planning.plan_generation(BRIEF, pd.DataFrame(), None, set(), np.random.default_rng(0))
    assert len(decisions) == BRIEF.autoplay.live_variants
    assert len({d.factors.key for d in decisions}) == len(decisions)
    grid = len(planning.factor_grid(BRIEF))
    assert all(d.kind == "explore" and d.propensity == BRIEF.autoplay.live_variants / grid for d in decisions)


def test_next_generation_keeps_the_posterior_favourites_and_explores_only_untried_combinations():
    grid = planning.factor_grid(BRIEF)
    live = pd.DataFrame([{"variant_id": f"v{i}", **f.as_dict()} for i, f in enumerate(grid[:6])])
    clicks = [50, 400, 60, 300, 55, 250]
    history = planning.evidence(BRIEF, live, daily([(f"v{i}", "2026-11-01", 20_000, c) for i, c in enumerate(clicks)]))
    tried = {f.key for f in grid[:6]}
    decisions = planning.plan_generation(BRIEF, live, history, tried, np.random.default_rng(0))
    kept = [d.variant_id for d in decisions if d.kind == "keep"]
    by_clicks = [f"v{i}" for i in sorted(range(6), key=lambda i: -clicks[i])]
    assert kept == by_clicks[: BRIEF.autoplay.keep_per_generation]
    explored = [d for d in decisions if d.kind == "explore"]
    assert len(explored) == BRIEF.autoplay.live_variants - BRIEF.autoplay.keep_per_generation
    assert all(d.factors.key not in tried for d in explored)
    assert all(0 < d.propensity <= 1 for d in explored)


def test_a_fatigued_winner_is_replaced_by_a_successor_that_keeps_its_template_and_colour():
    grid = planning.factor_grid(BRIEF)  # template x colour x aspect, aspects varying fastest
    picked = [grid[i] for i in (0, 3, 6, 9, 12, 15)]  # v0 in one aspect; its other aspects are untried
    live = pd.DataFrame([{"variant_id": f"v{i}", **f.as_dict()} for i, f in enumerate(picked)])
    rows = []
    for day in range(10):  # v0 was the best by far, and has lost most of its clicks over the last days
        v0_clicks = 600 if day < 6 else 120
        rows += [("v0", f"2026-11-{day + 1:02d}", 20_000, v0_clicks)]
        rows += [(f"v{i}", f"2026-11-{day + 1:02d}", 20_000, 200) for i in range(1, 6)]
    history = planning.evidence(BRIEF, live, daily(rows))
    tried = {f.key for f in picked}
    decisions = planning.plan_generation(BRIEF, live, history, tried, np.random.default_rng(0))
    [successor] = [d for d in decisions if d.kind == "succeed"]
    assert "v0" in successor.reason and "v0" not in [d.variant_id for d in decisions]
    assert successor.factors.key[:2] == grid[0].key[:2]
    assert successor.factors.key not in tried


def test_delayed_purchases_do_not_make_a_new_variant_look_worse_than_an_old_one():
    """Both convert 5% of clicks, eventually; the new one's last days have not shown all their purchases."""
    brief = BRIEF.model_copy(update={"goal": "conversion_rate"})
    rng = np.random.default_rng(1)
    rows = []
    for day in range(20):
        for vid, start in (("old", 0), ("new", 16)):
            if day < start:
                continue
            age = 19 - day  # purchases seen so far: the share of a 2-day mean delay that has arrived
            seen = 1 - np.exp(-(age + 0.5) / brief.autoplay.conversion_delay_days)
            rows.append((vid, f"2026-11-{day + 1:02d}", 50_000, 1000, rng.binomial(1000, 0.05 * seen)))
    frame = pd.DataFrame(rows, columns=["variant_id", "day", "impressions", "clicks", "purchases"])
    frame["day"] = pd.to_datetime(frame["day"])
    variants = pd.DataFrame({"variant_id": ["old", "new"], "template": "studio", "colour": "#D7263D", "aspect": "1:1"})
    events = planning.evidence(brief, variants, frame)
    arms = planning.arm_table(brief, variants, frame)
    aware = planning.variant_policy(brief, arms, np.random.default_rng(0), discounted=False).fit(events)
    naive = planning.BetaThompson(*planning.empirical_prior(arms)).fit(events)
    new, old = list(aware.variant_ids_).index("new"), list(aware.variant_ids_).index("old")
    assert naive.posterior_mean()[new] < 0.8 * naive.posterior_mean()[old]  # the bias this guards against
    assert aware.posterior_mean()[new] == pytest.approx(aware.posterior_mean()[old], rel=0.15)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20),
    st.floats(0.5, 10_000.0),
    st.lists(st.one_of(st.none(), st.floats(100, 50_000)), min_size=20, max_size=20),
)
def test_budgets_never_exceed_the_cap_and_move_at_most_the_step(weights, cap, previous):
    ids = [f"v{i}" for i in range(len(weights))]
    shares = pd.Series(weights, index=ids) + 1e-9
    shares = shares / shares.sum()
    prev = pd.Series(previous[: len(ids)], index=ids, dtype=float).dropna().round()
    brief = BRIEF.model_copy(update={"daily_budget": cap})
    if round(cap * 100) < 100 * len(shares):
        with pytest.raises(ValueError, match="cannot give"):
            planning.budgets_in_cents(brief, shares, prev)
        return
    cents = planning.budgets_in_cents(brief, shares, prev)
    assert cents.sum() <= round(cap * 100)
    assert (cents >= 100).all()
    step = brief.autoplay.max_budget_step
    floors = np.maximum(100, np.ceil(prev * (1 - step)))
    if floors.sum() + 100 * (len(ids) - len(prev)) <= round(cap * 100):  # the step limit is satisfiable
        moved = cents[prev.index]
        assert (moved >= floors - 1e-9).all()
        assert (moved <= np.maximum(100, np.floor(prev * (1 + step))) + 1e-9).all()


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.sampled_from(BRIEF.templates), min_size=1),
    st.floats(0, 12),
    st.integers(0, 2**31),
    st.lists(st.tuples(st.integers(0, 40_000), st.floats(0, 0.05)), min_size=6, max_size=6),
)
def test_plans_stay_inside_the_brief_whatever_the_evidence(approved, delta_e, seed, evidence_rows):
    brief = BRIEF.model_copy(
        update={
            "autoplay": BRIEF.autoplay.model_copy(
                update={"approved_templates": sorted(approved), "palette_max_delta_e": delta_e}
            )
        }
    )
    rng = np.random.default_rng(seed)
    grid = planning.factor_grid(brief)
    spread = [grid[i * len(grid) // 6] for i in range(6)]  # six distinct combinations across the grid
    live = pd.DataFrame([{"variant_id": f"v{i}", **f.as_dict()} for i, f in enumerate(dict.fromkeys(spread))])
    assert len(live) >= 2, "the plan must rank, keep and judge among several live variants"
    rows = [(vid, "2026-11-01", n, round(n * r)) for vid, (n, r) in zip(live["variant_id"], evidence_rows)]
    history = planning.evidence(brief, live, daily(rows))
    tried = {VariantFactors.of(f).key for f in live.to_dict("records")}
    decisions = planning.plan_generation(brief, live, history, tried, rng)
    assert len(decisions) <= brief.autoplay.live_variants
    assert len({d.factors.key for d in decisions}) == len(decisions)
    palette = [hex_to_lab(c) for c in brief.palette]
    for d in decisions:
        assert d.factors.template in approved
        assert min(ciede2000(hex_to_lab(d.factors.colour), p) for p in palette) <= delta_e + 1e-6
        assert 0 < d.propensity <= 1
    judged = dict(zip(live["variant_id"], [n >= brief.autoplay.min_impressions for n, _ in evidence_rows]))
    unjudged = [v for v, ok in judged.items() if not ok]
    kept = {d.variant_id for d in decisions if d.kind == "keep"}
    assert set(unjudged[: brief.autoplay.keep_per_generation]) <= kept  # nobody is judged on too little data


def test_with_the_colour_gate_on_only_approved_new_colours_are_planned_and_rejected_ones_never():
    open_brief = BRIEF.model_copy(update={"autoplay": BRIEF.autoplay.model_copy(update={"palette_max_delta_e": 8.0})})
    variations = [c for c in planning.candidate_colours(open_brief) if c not in BRIEF.palette]
    assert len(variations) >= 2 and planning.waiting_colours(open_brief) == []  # no gate: nothing waits
    approved, rejected = variations[0], variations[1]
    gated = open_brief.model_copy(
        update={
            "autoplay": open_brief.autoplay.model_copy(
                update={"approved_colours": [approved], "rejected_colours": [rejected]}
            )
        }
    )
    assert planning.candidate_colours(gated) == [*BRIEF.palette, approved]
    waiting = planning.waiting_colours(gated)
    assert approved not in waiting and rejected not in waiting and set(waiting) == set(variations[2:])
    for seed in range(5):
        decisions = planning.plan_generation(gated, pd.DataFrame(), None, set(), np.random.default_rng(seed))
        assert {d.factors.colour for d in decisions} <= {*BRIEF.palette, approved}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50_000), st.floats(0, 0.1)), min_size=2, max_size=6), st.integers(0, 99))
def test_allocation_keeps_the_exploration_floor_and_sums_to_one(arms, seed):
    variants = pd.DataFrame(
        {"variant_id": [f"v{i}" for i in range(len(arms))], "template": "studio", "colour": "#D7263D", "aspect": "1:1"}
    )
    rows = [(f"v{i}", "2026-11-01", n, round(n * r)) for i, (n, r) in enumerate(arms)]
    shares = planning.allocate(BRIEF, planning.evidence(BRIEF, variants, daily(rows)), np.random.default_rng(seed))
    assert shares.sum() == pytest.approx(1.0)
    assert (shares >= BRIEF.autoplay.exploration_floor - 1e-12).all()


def test_the_logged_propensity_is_the_budget_share_that_ran_not_the_thompson_share():
    shares = pd.Series({"a": 0.9, "b": 0.05, "c": 0.05})
    previous = pd.Series({"a": 10_000, "b": 10_000, "c": 10_000})  # yesterday's budgets: the step holds them
    budgets = planning.budgets_in_cents(BRIEF, shares, previous)
    ran = planning.logged_propensities(budgets)
    assert ran.sum() == pytest.approx(1.0)
    assert ran["a"] < 0.5 < shares["a"]  # delivery followed the clamped budgets
    assert ran.to_dict() == pytest.approx((budgets / budgets.sum()).to_dict())


def catalog_of(rates: dict[str, float], brand: str, products: int, seed: int = 0) -> pd.DataFrame:
    """Evidence of other products of ``brand`` whose rate depends on the template only (``rates``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(products):
        for i, f in enumerate(planning.factor_grid(BRIEF)[p::9][:6]):
            trials = 20_000
            rows.append({"variant_id": f"p{p}v{i}", "day": 20_400, **f.as_dict(), "camera": f.camera,
                         "trials": float(trials), "successes": float(rng.binomial(trials, rates[f.template])),
                         "brand": brand, "product": f"product-{p}"})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_new_brief_starts_from_what_its_brand_learnt_not_a_flat_prior():
    rates = {"studio": 0.01, "podium": 0.03, "hero": 0.01}  # podium wins for every product of the brand
    catalog = catalog_of(rates, BRIEF.brand, products=5)
    picks = {"cold": [], "catalog": []}
    for seed in range(8):
        for name, evidence in (("cold", None), ("catalog", catalog)):
            decisions = planning.plan_generation(BRIEF, pd.DataFrame(), None, set(), np.random.default_rng(seed),
                                                 evidence)  # fmt: skip
            picks[name] += [d.factors.template for d in decisions]
    share = {k: v.count("podium") / len(v) for k, v in picks.items()}
    assert share["cold"] < 0.5 < share["catalog"], share  # a third at random; most of them with the catalog
    live = pd.DataFrame([{"variant_id": t, "template": t, "colour": BRIEF.palette[0], "aspect": "1:1"} for t in rates])
    means = planning.catalog_prior_means(BRIEF, live, None, catalog)
    assert means["podium"] > 2 * means["studio"] and abs(means["podium"] - 0.03) < 0.01  # the allocation's prior
    assert planning.catalog_prior_means(BRIEF, live, None, None) is None  # alone in the deployment: its own prior


def test_partial_pooling_lets_a_product_differ_from_its_brand_once_its_own_evidence_says_so():
    from experiments.factorised import FactorisedThompson

    brand = catalog_of({"studio": 0.01, "podium": 0.03, "hero": 0.01}, "Aqua Co", products=5)
    own = catalog_of({"studio": 0.03, "podium": 0.01, "hero": 0.01}, "Aqua Co", products=1, seed=1)
    own["product"] = "contrarian"  # this one product prefers studio, on plenty of its own evidence
    model = FactorisedThompson().fit(pd.concat([brand, own], ignore_index=True))
    ask = pd.DataFrame(
        [VariantFactors(template=t, colour=BRIEF.palette[0], aspect="1:1").as_dict()
         | {"camera": get_template(t).camera, "brand": "Aqua Co", "product": p}
         for p in ("contrarian", "newcomer") for t in ("studio", "podium")]
    )  # fmt: skip
    rate = dict(zip(ask["product"] + "/" + ask["template"], model.posterior_mean(ask)))
    assert rate["contrarian/studio"] > rate["contrarian/podium"]  # its own evidence wins for it
    assert rate["newcomer/podium"] > rate["newcomer/studio"]  # a product with none follows the brand


def test_turntables_are_planned_where_the_placement_takes_video_and_learnt_as_a_factor():
    from pipelines.stages import render_job

    brief = BRIEF.model_copy(deep=True)
    brief.aspects = ["1:1", "16:9"]
    brief.autoplay.kinds = ["still", "turntable"]
    brief.autoplay.turntable_seconds, brief.autoplay.turntable_fps = 2.0, 12
    grid = planning.factor_grid(brief)
    turntables = [f for f in grid if f.kind == "turntable"]
    assert turntables and {f.aspect for f in turntables} == {"1:1"}  # 16:9 runs stills only
    assert len(grid) == len(brief.templates) * len(brief.palette) * 3
    plans = [planning.plan_generation(brief, pd.DataFrame(), None, set(), np.random.default_rng(s)) for s in range(4)]
    planned = {d.factors.kind for plan in plans for d in plan}
    assert planned == {"still", "turntable"}
    job = render_job(brief, turntables[0], "thumbnail")
    still = render_job(brief, turntables[0].model_copy(update={"kind": "still"}), "thumbnail")
    assert (job.kind, job.frames, job.fps) == ("turntable", 24, 12) and job.variant_id != still.variant_id
    # a turntable that earns twice the clicks of its still: the learner credits the kind, across colours
    live = pd.DataFrame([{"variant_id": f"v{i}", **f.as_dict()} for i, f in enumerate(grid[:12])])
    clicks = [400 if f.kind == "turntable" else 200 for f in grid[:12]]
    history = planning.evidence(brief, live, daily([(f"v{i}", "2026-11-01", 20_000, c) for i, c in enumerate(clicks)]))
    assert set(history["kind"]) == {"still", "turntable"}
    from experiments.factorised import FactorisedThompson

    model = FactorisedThompson(n_draws=1).fit(history)
    unseen = [f for f in grid[12:] if f.aspect == "1:1"]
    means = dict(zip([f.kind for f in unseen], model.posterior_mean(planning.candidates(brief, unseen))))
    assert means["turntable"] > 1.5 * means["still"]


def test_a_brief_asking_for_turntables_needs_an_aspect_that_takes_video(brief_file):
    from creative.brief import BriefError

    with pytest.raises(BriefError, match=r"turntables but no aspect takes video \(1:1, 4:5, 9:16\)"):
        load_brief(brief_file(**{"aspects": ["16:9"], "autoplay.kinds": ["still", "turntable"],
                                 "autoplay.live_variants": 4, "autoplay.keep_per_generation": 2}))  # fmt: skip


def test_with_one_ad_for_every_aspect_the_planner_tests_no_aspect_and_each_job_has_its_other_aspects(brief_file):
    from pipelines.stages import native_renders, render_job

    brief = load_brief(brief_file(**{"meta.native_aspects": True, "autoplay.kinds": ["still", "turntable"]}))
    assert brief.aspects == ["1:1", "4:5", "9:16"] and brief.planned_aspects == ["1:1"]
    grid = planning.factor_grid(brief)
    assert {f.aspect for f in grid} == {"1:1"} and len(grid) == len(brief.templates) * len(brief.palette) * 2
    turntable = render_job(brief, next(f for f in grid if f.kind == "turntable"), "thumbnail")
    others = native_renders(brief, turntable)
    assert [(j.aspect, j.kind) for j in others] == [("4:5", "turntable"), ("9:16", "turntable")]
    assert all(j.colour == turntable.colour and j.template == turntable.template for j in others)
    assert len({turntable.variant_id, *(j.variant_id for j in others)}) == 3
    plain = load_brief(brief_file())
    assert native_renders(plain, turntable) == [] and plain.planned_aspects == plain.aspects
    wide = load_brief(brief_file(**{"meta.native_aspects": True, "aspects": ["1:1", "16:9"]}))
    assert [(j.aspect, j.kind) for j in native_renders(wide, turntable)] == [("16:9", "still")]  # no video there


def test_one_ad_for_every_aspect_refuses_placement_ad_sets_and_a_turntable_led_by_a_still_aspect(brief_file):
    from creative.brief import BriefError

    with pytest.raises(BriefError, match=r"native_aspects .* cannot go into meta.ad_sets split by placement"):
        load_brief(brief_file(**{"meta.native_aspects": True, "meta.ad_sets": {"feed": "120000000000009"}}))
    with pytest.raises(BriefError, match=r"first aspect \(16:9\) is the ad's main render and must take video"):
        load_brief(brief_file(**{"meta.native_aspects": True, "aspects": ["16:9", "1:1"],
                                 "autoplay.kinds": ["still", "turntable"]}))  # fmt: skip
    with pytest.raises(BriefError, match=r"fewer combinations .* aspects count once"):
        load_brief(brief_file(**{"meta.native_aspects": True, "palette": ["#111827"], "templates": ["studio"],
                                 "autoplay.live_variants": 3, "autoplay.keep_per_generation": 2}))  # fmt: skip
