"""Two generations of the whole loop: real broker, Dagster, MLflow, the SDK against the sandbox.

Renders are thumbnails; the market is easy (one clearly best variant), so learning must show.
"""

from pathlib import Path

import mlflow
import pytest
import yaml
from dagster import DagsterInstance

from experiments.market import SimulatedMarket
from pipelines.assets import LOOP_ASSETS, renders
from pipelines.demo import run_demo
from pipelines.settings import load_settings
from tests.conftest import EXAMPLE_BRIEF, WATERBOTTLE

EASY_BRIEF = {
    "templates": ["studio", "podium"],
    "palette": ["#1F6FEB", "#E8D5C4"],
    "aspects": ["1:1"],
    "autoplay": {
        "live_variants": 4,
        "keep_per_generation": 3,
        "days_per_generation": 3,
        "activate": True,
        "exploration_floor": 0.03,
        "min_impressions": 1000,
    },
}
# one clearly best variant (podium on #1F6FEB), two middling, one poor
EASY_MARKET = {"effect_scale": 0.0, "boosts": {("template", "podium"): 0.6, ("colour", "#1F6FEB"): 0.6}}


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory, broker):
    root = tmp_path_factory.mktemp("loop")
    brief = yaml.safe_load(EXAMPLE_BRIEF.read_text()) | EASY_BRIEF
    brief["product"]["model"] = str(WATERBOTTLE)
    brief_path = root / "brief.yaml"
    brief_path.write_text(yaml.safe_dump(brief))
    env = {
        "AUTOPLAY_HOME": str(root / "home"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "AUTOPLAY_EVENTS_TOPIC": "loop-events",
        "AUTOPLAY_DEAD_LETTER_TOPIC": "loop-events.dead",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    settings = load_settings(env)
    result = run_demo(
        settings,
        brief_path,
        generations=2,
        profile="thumbnail",
        market=SimulatedMarket(seed=11, **EASY_MARKET),
        seed=11,
    )
    return settings, result


def test_events_reached_the_store_through_kafka(loop_run):
    _, result = loop_run
    assert result.event_counts["metric_snapshots"] > 0
    assert result.leaderboard["impressions"].sum() > 100_000


def test_the_best_live_variant_gets_more_traffic_as_the_loop_learns(loop_run):
    _, result = loop_run
    shares = result.best_share.set_index("generation")["share"]
    assert list(shares.index) == [0, 1]
    best = result.best_share.set_index("generation")["variant_id"]
    assert best[0] == best[1], "the clearly best variant was live in both generations"
    assert shares[1] > shares[0]
    # budgets move at most 20% a day (the brief's guardrail), so the winner ramps up over days, not at once
    assert shares[1] > 0.65


def test_every_stage_ran_through_dagster(loop_run):
    settings, _ = loop_run
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        runs = instance.get_runs()
        assert runs and all(r.is_success for r in runs)
        for stage in LOOP_ASSETS:
            assert instance.get_latest_materialization_event(stage.key) is not None, stage.key
        variants = instance.get_dynamic_partitions("variants")
        assert instance.get_materialized_partitions(renders.key) == set(variants)


def test_each_training_is_an_mlflow_run_with_leaderboard_and_contact_sheet(loop_run):
    settings, result = loop_run
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    # artifacts and models beside the SQLite store, not in ./mlruns of whatever directory ran the loop
    assert experiment.artifact_location.startswith(
        Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.as_uri()
    )
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"leaderboard.csv", "plots", "contact_sheets"} <= artifacts
    assert all(sheet.is_file() for sheet in result.sheets) and len(result.sheets) == 2
    metrics = runs[0].data.metrics
    assert {"expected_regret_per_trial", "offline_snips_challenger"} <= set(metrics)
    assert any(k.startswith("p_best.") for k in metrics)


def test_the_policy_is_a_registered_pyfunc_that_allocates_and_proposes_when_loaded(loop_run):
    settings, result = loop_run
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    name = "autoplay-" + yaml.safe_load(EXAMPLE_BRIEF.read_text())["name"]
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == 2  # one per training
    challenger = client.get_model_version_by_alias(name, "challenger")
    champion = client.get_model_version_by_alias(name, "champion")
    assert challenger.version == max((v.version for v in versions), key=int)
    assert "autoplay.promotion" in challenger.tags  # the decision, promoted or not, is recorded
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    board = result.leaderboard
    shares = model.predict(board[["variant_id"]].head(4), params={"action": "allocate"})
    assert shares["share"].sum() == pytest.approx(1.0)
    assert shares.set_index("variant_id")["share"].idxmax() == board.iloc[0]["variant_id"]
    candidates = board[["template", "colour", "aspect"]]
    picked = model.predict(candidates, params={"action": "propose", "k": 2})
    assert len(picked) == 2 and picked["propensity"].between(0, 1).all()
    assert champion.version in {v.version for v in versions}


def test_the_access_token_is_nowhere_in_run_config_or_mlflow(loop_run):
    import os

    settings, _ = loop_run
    token = os.environ["META_ACCESS_TOKEN"]
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for run in instance.get_runs():
            assert token not in repr(run.run_config) and token not in repr(run.tags)
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    for run in client.search_runs([client.get_experiment_by_name(settings.mlflow_experiment).experiment_id]):
        assert token not in repr(run.data.params) and token not in repr(run.data.tags)


def test_both_channels_published_and_were_read_back(loop_run):
    from connectors.event_store import EventStore
    from connectors.ledger import Ledger

    settings, result = loop_run
    back = result.read_back.set_index(["channel", "kind"])
    orders = back.loc[("shopify", "purchase")]
    assert orders["count"] > 0 and orders["joined_to_ads"] == orders["count"]  # every order joined to its ad
    # the pixel's checkout and the order webhook are one purchase: the shop's orders are exactly Meta's purchases
    assert orders["count"] == back.loc[("meta", "purchases"), "count"]
    assert back.loc[("shopify", "product_view"), "count"] > back.loc[("shopify", "add_to_cart"), "count"] > 0
    ledger = Ledger(EventStore(settings.event_store_path))
    meta, shop = ledger.publications("meta"), ledger.publications("shopify")
    assert set(shop["variant_id"]) == set(meta["variant_id"]) and (shop["status"] == "READY").all()
    assert shop["media_id"].str.startswith("gid://shopify/MediaImage/").all()


def test_no_token_of_either_channel_is_in_run_config_or_dagster_logs(loop_run):
    import os

    settings, _ = loop_run
    tokens = [os.environ["META_ACCESS_TOKEN"], os.environ["SHOPIFY_ACCESS_TOKEN"]]
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for run in instance.get_runs():
            logs = repr([e.message for e in instance.all_logs(run.run_id)])
            for token in tokens:
                assert token not in repr(run.run_config) and token not in logs
