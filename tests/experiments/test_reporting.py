"""What a marketer reads: factor lifts with honest intervals (pure)."""

import numpy as np
import pandas as pd

from experiments.reporting import lift_sentence, pooled_lifts


def evidence(rates: dict[str, float], trials: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"variant_id": f"v{t}", "template": t, "colour": "#FFFFFF", "aspect": "1:1", "trials": trials,
         "successes": rng.binomial(trials, rate)}
        for t, rate in rates.items()
    ]  # fmt: skip
    return pd.DataFrame(rows)


def factor_lifts(frame: pd.DataFrame, scope: str) -> pd.DataFrame:
    """Lifts for one brand's one product, the way the console and `autoplay insights` read them."""
    return pooled_lifts(frame.assign(brand=scope, brief="product"), [(scope, scope, None)])


def test_a_lift_interval_holds_the_true_lift_and_narrows_with_evidence():
    truth = 0.03 / 0.025 - 1  # podium +20% against studio

    def podium(trials: int) -> pd.Series:
        frame = evidence({"studio": 0.025, "podium": 0.03}, trials)
        frame.loc[frame["template"] == "studio", "trials"] += 1  # the most tried: the reference
        return factor_lifts(frame, "Aqua Co").set_index(["factor", "level"]).loc[("template", "podium")]

    small, large = podium(2_000), podium(2_000_000)
    assert small["reference"] == large["reference"] == "studio"
    assert large["lift_low"] < truth < large["lift_high"] and small["lift_low"] < truth < small["lift_high"]
    assert (large["lift_high"] - large["lift_low"]) < (small["lift_high"] - small["lift_low"]) / 10
    sentence = lift_sentence(large.to_dict() | {"factor": "template", "level": "podium"})
    assert sentence.startswith("template podium: +") and "against studio (Aqua Co" in sentence


def test_the_most_tried_level_is_the_reference_with_no_lift():
    frame = evidence({"studio": 0.02, "podium": 0.03}, 1000)
    frame.loc[frame["template"] == "studio", "trials"] = 5000
    lifts = factor_lifts(frame, "catalog").set_index(["factor", "level"])
    assert lifts.loc[("template", "studio"), "reference"] == "studio"
    assert lifts.loc[("template", "studio"), ["lift", "lift_low", "lift_high"]].tolist() == [0.0, 0.0, 0.0]


def test_shades_of_one_family_pool_into_its_lift_and_families_are_what_a_marketer_would_call_them():
    from creative.vocabulary import colour_family

    names = {"#7B2CBF": "purple", "#9B5DE5": "purple", "#FFFFFF": "white", "#F2F2F2": "white",
             "#E8D5C4": "beige", "#111827": "black", "#1F6FEB": "blue", "#2E7D32": "green", "#B03A2E": "red",
             "#808080": "grey"}  # fmt: skip
    assert {c: colour_family(c) for c in names} == names
    rng = np.random.default_rng(3)
    rows = [{"variant_id": c, "template": "studio", "colour": c, "aspect": "1:1", "trials": 400_000,
             "successes": rng.binomial(400_000, rate)}
            for c, rate in (("#7B2CBF", 0.036), ("#9B5DE5", 0.036), ("#FFFFFF", 0.03), ("#F2F2F2", 0.03))]  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.loc[frame["colour"] == "#FFFFFF", "trials"] += 1  # white is the most tried family's anchor
    lifts = factor_lifts(frame, "Aqua Co").set_index(["factor", "level"])
    purple = lifts.loc[("colour_family", "purple")]
    assert purple["reference"] == "white" and purple["trials"] == 800_000
    # +20% on 800k trials a family: narrow (the model splits a colour over its shade, family and CIELAB)
    assert abs(purple["lift"] - 0.2) < 0.03 and purple["lift_high"] - purple["lift_low"] < 0.07


def test_a_templates_lift_is_not_the_colours_it_happened_to_run_with():
    """Podium ran mostly on purple and studio mostly on white; purple lifts clicks by half, the template
    nothing. Pooled counts would credit podium with about +39%; the model holds the colours as they ran."""
    rng = np.random.default_rng(5)
    runs = [("studio", "#FFFFFF", 0.02, 1_000_000), ("studio", "#7B2CBF", 0.03, 100_000),
            ("podium", "#7B2CBF", 0.03, 1_000_000), ("podium", "#FFFFFF", 0.02, 100_000)]  # fmt: skip
    frame = pd.DataFrame([{"variant_id": f"v{i}", "template": t, "colour": c, "aspect": "1:1", "trials": n,
                           "successes": rng.binomial(n, rate)} for i, (t, c, rate, n) in enumerate(runs)])  # fmt: skip
    frame.loc[0, "trials"] += 1  # studio the reference
    lifts = factor_lifts(frame, "Aqua Co").set_index(["factor", "level"])
    podium, purple = lifts.loc[("template", "podium")], lifts.loc[("colour", "#7B2CBF")]
    assert podium["lift_low"] < 0 < podium["lift_high"] and abs(podium["lift"]) < 0.05
    assert purple["lift_low"] > 0.4 and purple["reference"] == "#FFFFFF"


def test_placement_and_kind_are_factors_a_marketer_can_read_a_lift_for():
    """Reels (9:16) earn 1.6x the clicks of the feed and turntables 1.3x stills; the insights say so, each
    against the most-tried level, with intervals that exclude no lift."""
    rng = np.random.default_rng(3)
    runs = [(a, k, 0.02 * (1.6 if a == "9:16" else 1.0) * (1.3 if k == "turntable" else 1.0))
            for a in ("1:1", "4:5", "9:16") for k in ("still", "turntable")]  # fmt: skip
    cells = [(a, k, rate, c) for a, k, rate in runs for c in ("#FFFFFF", "#7B2CBF")]
    frame = pd.DataFrame([{"variant_id": f"v{i}", "template": "studio", "colour": c, "aspect": a, "kind": k,
                           "trials": 400_000 + (i == 0), "successes": rng.binomial(400_000, rate)}
                          for i, (a, k, rate, c) in enumerate(cells)])  # fmt: skip
    lifts = factor_lifts(frame, "Aqua Co").set_index(["factor", "level"])
    vertical, turntable = lifts.loc[("placement", "vertical")], lifts.loc[("kind", "turntable")]
    assert vertical["reference"] == "feed" and 0.4 < vertical["lift_low"] < vertical["lift"] < 0.8
    assert turntable["reference"] == "still" and 0.2 < turntable["lift_low"] < turntable["lift"] < 0.4
    assert lifts.loc[("placement", "feed"), "trials"] == 8 * 400_000 + 1  # 1:1 and 4:5, both kinds and colours
