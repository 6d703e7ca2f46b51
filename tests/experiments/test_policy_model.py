"""The registered policy's predict: shares for known variants, an error naming unknown ones unless asked to
score them by the prior (what offline evaluation of an older champion does with variants born after it)."""

import pandas as pd
import pytest

from experiments.factorised import FactorisedThompson
from experiments.policy_model import PolicyModel
from experiments.thompson import BetaThompson


def model() -> PolicyModel:
    events = pd.DataFrame({"variant_id": ["va", "vb"], "successes": [30.0, 10.0], "trials": [1000.0, 1000.0],
                           "template": ["studio", "podium"], "colour": ["#1F6FEB", "#E8D5C4"],
                           "aspect": "1:1"})  # fmt: skip
    variants = BetaThompson(prior_alpha=2.0, prior_beta=98.0, random_state=0).fit(events)
    return PolicyModel(variants, FactorisedThompson(random_state=0).fit(events), exploration_floor=0.05)


def test_unknown_variant_ids_are_named_unless_the_prior_is_asked_for():
    policy = model()
    with pytest.raises(ValueError, match=r"variant ids \['vnew'\] were not in this model's training \(2 variants\)"):
        policy.predict(None, pd.DataFrame({"variant_id": ["va", "vnew"]}))
    shares = policy.predict(None, pd.DataFrame({"variant_id": ["va", "vnew"]}), {"unknown_variants": "prior"})
    assert shares["share"].sum() == pytest.approx(1.0) and (shares["share"] >= 0.05 - 1e-12).all()
    known = policy.predict(None, pd.DataFrame({"variant_id": ["va", "vb"]})).set_index("variant_id")["share"]
    assert known["va"] > known["vb"]


def test_an_older_champion_is_evaluated_offline_on_logs_with_variants_born_after_it():
    from pipelines.stages import offline_estimate

    policy = model()

    class Loaded:  # what mlflow.pyfunc.load_model returns: predict(frame, params)
        def predict(self, frame, params=None):
            return policy.predict(None, frame, params)

    log = pd.DataFrame({"variant_id": ["va", "vb", "vnew"] * 2, "day": ["2026-11-01"] * 3 + ["2026-11-02"] * 3,
                        "propensity": [0.5, 0.3, 0.2] * 2, "successes": [30.0, 10.0, 20.0] * 2,
                        "trials": [1000.0] * 6})  # fmt: skip
    estimate = offline_estimate(Loaded(), log)
    assert 0.01 < estimate.value < 0.03 and estimate.low <= estimate.value <= estimate.high
