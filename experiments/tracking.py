"""MLflow logging of a training: parameters, metrics, the leaderboard and pictures as artifacts.

Only explicitly chosen, non-secret values are logged; nothing from the environment is copied in.
MLflow and matplotlib are imported where they are used: this module is on the path of every Dagster run's
code load, and only a training logs (about 3.5 s of imports saved on each run's start).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from experiments.reporting import pyplot

if TYPE_CHECKING:
    from experiments.policy_model import PolicyModel


@dataclass(frozen=True)
class TrackingTarget:
    """Where trainings are logged. ``artifact_location`` is for local stores; servers choose their own."""

    tracking_uri: str
    experiment: str = "autoplay"
    artifact_location: str | None = None

    def activate(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        if mlflow.get_experiment_by_name(self.experiment) is None:
            mlflow.create_experiment(self.experiment, artifact_location=self.artifact_location)
        mlflow.set_experiment(self.experiment)


def log_training(
    target: TrackingTarget,
    run_name: str,
    params: dict,
    metrics: dict,
    board: pd.DataFrame,
    history: pd.DataFrame,
    images: list[Path],
    tags: dict | None = None,
    policy_model: PolicyModel | None = None,
    registered_name: str | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
    plots: list[Path] | None = None,
    step: int = 0,
) -> str:
    """Log one training as an MLflow run; returns the run id.

    With ``policy_model``, the fitted policy is logged as a pyfunc model and registered under
    ``registered_name`` as a new version carrying the ``challenger`` alias.
    """
    import mlflow

    from experiments.policy_model import log_policy_model

    target.activate()
    with mlflow.start_run(run_name=run_name, tags=tags or {}) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)
        for r in history.itertuples():  # the learning curve as steps: one per generation
            mlflow.log_metric("best_live_traffic_share", float(r.best_share), step=int(r.generation))
        if len(history):
            mlflow.log_table(history, "learning_curve.json")
        board_csv = Path(tmp) / "leaderboard.csv"
        board.to_csv(board_csv, index=False)
        mlflow.log_artifact(str(board_csv))
        mlflow.log_table(board, "leaderboard.json")  # per-variant figures, as a table the MLflow UI shows
        mlflow.log_artifact(str(posterior_plot(board, Path(tmp) / "posteriors.png")), "plots")
        if len(history):
            mlflow.log_artifact(str(learning_curve(history, Path(tmp) / "learning_curve.png")), "plots")
        for image in images:
            mlflow.log_artifact(str(image), "contact_sheets")
        for name, table in (tables or {}).items():
            table.to_csv(Path(tmp) / name, index=False)
            mlflow.log_artifact(str(Path(tmp) / name))
        for plot in plots or []:
            mlflow.log_artifact(str(plot), "plots")
        if policy_model is not None:
            example = board[["variant_id", "template", "colour", "aspect"]].head(3)
            log_policy_model(policy_model, registered_name, example)
        return run.info.run_id


def posterior_plot(board: pd.DataFrame, out: Path) -> Path:
    """Posterior means with 95% intervals per variant, best at the top."""
    top = board.head(15).iloc[::-1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(top) + 1.2))
    y = range(len(top))
    ax.errorbar(
        top["posterior_mean"],
        y,
        xerr=[top["posterior_mean"] - top["ci_low"], top["ci_high"] - top["posterior_mean"]],
        fmt="o",
        capsize=3,
    )
    ax.set_yticks(list(y), [f"{r.template} {r.colour} {r.aspect}" for r in top.itertuples()], fontsize=8)
    ax.set_xlabel("posterior mean (95% interval)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def learning_curve(history: pd.DataFrame, out: Path) -> Path:
    """Share of traffic that went to the best live variant (by posterior, among that generation's), per
    generation."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(history["generation"], history["best_share"], marker="o")
    for r in history.itertuples():
        ax.annotate(f"{r.best_share:.1%}", (r.generation, r.best_share), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)  # fmt: skip
    ax.set_xlabel("generation")
    ax.set_ylabel("traffic share of best live variant")
    ax.set_xticks(list(history["generation"]))
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
