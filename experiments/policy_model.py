"""The fitted policy as an MLflow pyfunc model: loaded anywhere, it allocates traffic and proposes variants.

``predict`` takes a frame of variants and a ``params`` dict:
- ``{"action": "allocate"}`` (default): rows with ``variant_id``; returns their traffic shares (P(best)
  mixed with the brief's exploration floor) as column ``share``. A variant id the model was not trained on
  is an error naming it, unless ``{"unknown_variants": "prior"}``: then it is scored by the prior (what a
  champion does with variants born after it, in offline evaluation).
- ``{"action": "propose", "k": 3}``: rows of candidate factors (``template``, ``colour``, ``aspect``);
  returns the ``k`` picked rows with their ``propensity``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from creative.vocabulary import get_template
from experiments.factorised import FactorisedThompson
from experiments.thompson import BetaThompson

ROOT = Path(__file__).resolve().parent.parent


class PolicyModel(mlflow.pyfunc.PythonModel):
    def __init__(self, variants: BetaThompson, factorised: FactorisedThompson, exploration_floor: float) -> None:
        self.variants = variants
        self.factorised = factorised
        self.exploration_floor = exploration_floor

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        params = params or {}
        action = params.get("action", "allocate")
        if action == "allocate":
            if "variant_id" not in model_input.columns:
                raise ValueError("allocate needs a 'variant_id' column")
            unknown = sorted(set(model_input["variant_id"].astype(str)) - set(self.variants.variant_ids_))
            if unknown and params.get("unknown_variants", "error") != "prior":
                raise ValueError(
                    f"allocate: variant ids {unknown[:10]} were not in this model's training "
                    f"({len(self.variants.variant_ids_)} variants); refit, allocate among known ones, or pass "
                    "params={'unknown_variants': 'prior'} to give them the prior"
                )
            shares = self.variants.subset(model_input["variant_id"]).allocate(self.exploration_floor)
            return pd.DataFrame({"variant_id": shares.index, "share": shares.to_numpy()})
        if action == "propose":
            missing = {"template", "colour", "aspect"} - set(model_input.columns)
            if missing:
                raise ValueError(f"propose needs columns {sorted(missing)}")
            candidates = model_input.reset_index(drop=True)
            candidates = candidates.assign(camera=[get_template(t).camera for t in candidates["template"]])
            picks = self.factorised.propose(candidates, int(params.get("k", 1)))
            out = candidates.iloc[[i for i, _ in picks]].drop(columns="camera").reset_index(drop=True)
            return out.assign(propensity=[p for _, p in picks])
        raise ValueError(f"unknown action {action!r}; use 'allocate' or 'propose'")


#: What the policy needs where it is loaded (the packages it imports travel as code paths).
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "scipy", "scikit-learn", "pydantic", "pyyaml", "matplotlib")


def model_requirements() -> list[str]:
    """Pinned to the versions it was trained with, from the registry; never this repo as a package."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_PACKAGES]


def log_policy_model(model: PolicyModel, registered_name: str, example: pd.DataFrame | None = None) -> str:
    """Log the policy in the active run, register a new version, point ``challenger`` at it; returns the version.

    The experiments, rendering and creative packages travel with the model (code paths), so it loads without this repo.
    """
    # "allocate" reads variant_id, "propose" the factors: every column optional; the params schema lets
    # callers pass the action (without it MLflow drops params)
    inputs = Schema([ColSpec("string", c, required=False) for c in ("variant_id", "template", "colour", "aspect")])
    params = ParamSchema(
        [
            ParamSpec("action", "string", "allocate"),
            ParamSpec("k", "long", 1),
            ParamSpec("unknown_variants", "string", "error"),
        ]
    )
    signature = ModelSignature(inputs=inputs, params=params)
    quiet = logging.getLogger("mlflow.pyfunc")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its advice on cloudpickle and input examples does not apply here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(
                name="policy",
                python_model=model,
                code_paths=[str(ROOT / "experiments"), str(ROOT / "rendering"), str(ROOT / "creative")],
                signature=signature,
                input_example=example,
                registered_model_name=registered_name,
                pip_requirements=model_requirements(),  # given, not inferred: inference costs seconds a model
            )
    finally:
        quiet.setLevel(level)
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(registered_name, "challenger", version)
    return version
