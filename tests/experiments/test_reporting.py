"""What a marketer reads: factor lifts with honest intervals (pure)."""

import numpy as np
import pandas as pd

from experiments.reporting import factor_lifts, lift_sentence


def evidence(rates: dict[str, float], trials: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"variant_id": f"v{t}", "template": t, "colour": "#FFFFFF", "aspect": "1:1", "trials": trials,
         "successes": rng.binomial(trials, rate)}
        for t, rate in rates.items()
    ]  # fmt: skip
    return pd.DataFrame(rows)


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
