"""The estimators' check on real logged-bandit data: the Open Bandit Dataset (ZOZO; CC BY 4.0).

The same shop logged 10,000 impressions under Bernoulli Thompson sampling and 10,000 under a uniform
random policy over 80 items in 3 positions. Evaluating "uniform random" offline from the Thompson log
must land near the CTR the random log actually observed: a test of the estimators on data we did not make.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from experiments.evaluation import Estimate, dr, ips, snips

SLICE = Path(__file__).resolve().parent.parent / "tests" / "data" / "open-bandit-dataset"
N_ITEMS = 80


def load(policy: str, folder: Path = SLICE) -> pd.DataFrame:
    """One logging policy's impressions (``random`` or ``bts``): item_id, position, click, propensity_score."""
    path = folder / f"{policy}.csv"
    log = pd.read_csv(path)
    missing = {"item_id", "position", "click", "propensity_score"} - set(log.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return log


def reward_model(log: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Click probability by (item, position) from a regularised logistic regression on the log itself.

    Returns the prediction for each logged impression and the mean prediction over all 80 items at the
    impression's position (what the uniform policy expects there under the model).
    """
    encoder = OneHotEncoder(categories=[np.arange(N_ITEMS), np.arange(1, 4)], sparse_output=False)
    x = encoder.fit_transform(log[["item_id", "position"]])
    model = LogisticRegression(C=0.1, max_iter=1000).fit(x, log["click"])
    logged = model.predict_proba(x)[:, 1]
    grid = pd.DataFrame({"item_id": np.tile(np.arange(N_ITEMS), 3), "position": np.repeat([1, 2, 3], N_ITEMS)})
    by_position = pd.Series(model.predict_proba(encoder.transform(grid))[:, 1]).groupby(grid["position"]).mean()
    return logged, log["position"].map(by_position).to_numpy()


def uniform_policy_from_bts(folder: Path = SLICE) -> tuple[float, list[Estimate]]:
    """The random log's observed CTR (the truth) and IPS, SNIPS and DR estimates of it from the BTS log."""
    truth = float(load("random", folder)["click"].mean())
    bts = load("bts", folder)
    target = np.full(len(bts), 1.0 / N_ITEMS)  # uniform over the 80 items, in whichever position
    args = bts["click"].to_numpy(), bts["propensity_score"].to_numpy(), target
    logged, expected = reward_model(bts)
    return truth, [ips(*args), snips(*args), dr(*args, logged, expected)]
