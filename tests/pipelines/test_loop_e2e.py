"""Three generations of two briefs through Dagster's daemon: real broker, Dagster, MLflow, the SDKs against the
sandboxes.

Renders are thumbnails; the market is easy (one clearly best variant), so learning must show.
"""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance

from pipelines.assets import LOOP_ASSETS, policy, renders
from pipelines.warm_runs import PID_TAG
from tests.conftest import EXAMPLE_BRIEF
from tests.pipelines.loop_run import GENERATIONS, OTHER, RESUMED_ON

pytestmark = pytest.mark.slow


def result_of(run, name="waterbottle-launch"):
    return next(r for r in run.results if r.brief.name == name)


def test_both_briefs_reach_generation_2_through_the_daemon(loop_run):
    settings, run, _ = loop_run
    from connectors.event_store import EventStore
    from connectors.ledger import Ledger

    ledger = Ledger(EventStore(settings.event_store_path))
    for name in ("waterbottle-launch", OTHER):
        assert ledger.current_generation(name) == GENERATIONS - 1
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        runs = instance.get_runs()
        assert runs and all(r.is_success for r in runs)
        assert {r.job_name for r in runs} == {"autoplay_loop", "render_variants"}
        assert all(r.tags.get("dagster/sensor_name") == "autoplay_sensor" for r in runs)  # the daemon, no shortcut
        keys = [r.tags["dagster/run_key"] for r in runs]
        assert len(keys) == len(set(keys))  # no step done twice
        assert set(instance.get_dynamic_partitions("briefs")) == {"waterbottle-launch", OTHER}


def test_no_request_about_one_briefs_objects_was_made_for_the_other(loop_run):
    settings, run, reporter = loop_run
    from connectors.event_store import EventStore
    from connectors.ledger import Ledger

    ledger = Ledger(EventStore(settings.event_store_path))
    meta = reporter.running.sandboxes.meta
    for name, other in (("waterbottle-launch", OTHER), (OTHER, "waterbottle-launch")):
        mine = ledger.publications(name, "meta")
        theirs = ledger.publications(other, "meta")
        theirs_ids = set(theirs["ad_id"]) | set(theirs["adset_id"]) | set(theirs["creative_id"])
        assert len(mine) and not theirs_ids & (set(mine["ad_id"]) | set(mine["adset_id"]))
    for request in meta.requests:  # every insights read names only the ads of one brief
        if request["path"].endswith("/insights") and "filtering" in request["params"]:
            (rule,) = json.loads(request["params"]["filtering"])
            briefs = {meta.objects[a]["name"].split("|")[1] for a in rule["value"]}
            assert len(briefs) == 1


def test_a_paused_brief_stays_paused_for_two_days_while_the_other_runs_and_resume_restores_it(loop_run):
    _, _, reporter = loop_run
    days = reporter.days
    assert days["2026-11-04"]["other_ads"] == {"PAUSED"} and days["2026-11-05"]["other_ads"] == {"PAUSED"}
    assert any(v > 0 for v in days["2026-11-04"]["spend_cents"].values())  # the other brief kept running
    later = [d for d in sorted(days) if d > RESUMED_ON]
    assert later and "ACTIVE" in days[later[-1]]["other_ads"]


def test_each_days_budgets_stay_within_each_cap(loop_run):
    _, _, reporter = loop_run
    for day in reporter.days.values():
        for cents in day["spend_cents"].values():
            assert cents <= 60000  # both briefs' daily cap is 600
    settings = loop_run[0]
    from connectors.event_store import EventStore
    from connectors.ledger import Ledger

    decisions = Ledger(EventStore(settings.event_store_path)).decisions("waterbottle-launch")
    alloc = decisions[decisions["kind"] == "allocate"]
    details = pd.DataFrame([json.loads(f) for f in alloc["factors"]], index=alloc.index)
    for _, day in details.assign(propensity=alloc["propensity"]).groupby("day"):
        # the logged propensity is the budget share that ran, not the Thompson share before the guardrails
        assert day["propensity"].to_numpy() == pytest.approx(
            (day["daily_budget_cents"] / day["daily_budget_cents"].sum()).to_numpy()
        )


def test_status_and_audit_read_the_ledger_with_nothing_running(loop_run):
    settings, _, _ = loop_run
    from typer.testing import CliRunner

    from pipelines.cli import app

    env = {"AUTOPLAY_HOME": str(settings.home)}
    out = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    (other,) = [b for b in doc["briefs"] if b["name"] == OTHER]
    assert set(other) == {"name", "brand", "paused", "day", "generation", "daily_budget_cap", "budget_today",
                          "ads", "shopify"}  # fmt: skip
    assert (
        other["paused"] is False and other["generation"] == GENERATIONS - 1 and other["shopify"] == {"model_3d": None}
    )
    assert {a["channel"] for a in other["ads"]} == {"meta", "shopify"}
    (first,) = [b for b in doc["briefs"] if b["name"] == "waterbottle-launch"]
    assert first["shopify"] == {"model_3d": "READY"}  # the example brief asks for its 3D model on the page
    assert set(other["ads"][0]) == {"variant_id", "channel", "kind", "status", "daily_budget"}
    assert {a["kind"] for a in other["ads"]} == {"still", "turntable"}
    assert other["budget_today"] <= other["daily_budget_cap"]
    audit = json.loads(CliRunner().invoke(app, ["audit", "--brief", OTHER, "--json"], env=env).output)["actions"]
    kinds = {a["action"] for a in audit}
    assert {"plan", "render", "publish", "allocate", "train", "pause", "resume"} <= kinds
    assert {a["actor"] for a in audit if a["action"] == "pause"} == {"cli:test"}
    assert all(a["actor"].startswith("dagster:autoplay_sensor:") for a in audit if a["action"] == "allocate")


def test_insights_find_the_winning_template_and_colour_per_brand_and_across_the_catalog(loop_run, tmp_path):
    settings, _, _ = loop_run
    from typer.testing import CliRunner

    from pipelines.cli import app

    env = {"AUTOPLAY_HOME": str(settings.home)}
    chart = tmp_path / "lifts.png"
    out = CliRunner().invoke(app, ["insights", "--brand", "Aqua Co", "--json", "--plot", str(chart)], env=env)
    assert out.exit_code == 0, out.output
    lifts = json.loads(out.output)["lifts"]
    assert {r["scope"] for r in lifts} == {"catalog", "Aqua Co"}
    for scope in ("catalog", "Aqua Co"):  # the easy market boosts podium and #1F6FEB: the others lose, surely
        rows = {(r["factor"], r["level"]): r for r in lifts if r["scope"] == scope}
        assert rows[("template", "studio")]["reference"] == "podium"
        assert rows[("template", "studio")]["lift_high"] < 0 and rows[("colour", "#E8D5C4")]["lift_high"] < 0
    assert chart.stat().st_size > 10_000
    bad = CliRunner().invoke(app, ["insights", "--brand", "Nobody"], env=env)
    assert bad.exit_code == 2 and "no brief of that brand" in bad.output


def test_an_unseen_flat_product_is_staged_checked_and_published_by_the_unattended_loop(loop_run):
    """The second brief sells a watch lying flat (an OBJ the renderer was not built around): every variant
    the daemon's render runs made is seen from above, passed the render QA, and its ads went out. It also
    names the winter holidays scene, whose season starts after these November days: never planned."""
    settings, run, _ = loop_run
    from connectors.event_store import EventStore
    from connectors.ledger import Ledger
    from rendering.outputs import RenderManifest

    ledger = Ledger(EventStore(settings.event_store_path))
    variants = ledger.variants(OTHER)
    rendered = variants[variants["render_status"] == "rendered"]
    assert len(rendered) == len(variants) >= 4, variants[["variant_id", "render_status", "render_error"]]
    assert set(variants["template"]) == {"studio", "podium"}
    for folder in rendered["render_dir"]:
        manifest = RenderManifest.load(Path(folder))
        assert Path(manifest.job.model_path).name == "watch.obj"
        assert manifest.normalised["shape"]["kind"] == "flat" and manifest.framing["elevation"] >= 30
        assert manifest.qa["passed"], manifest.qa["failures"]
    published = set(ledger.publications(OTHER, "meta")["variant_id"])
    assert published and published <= set(rendered["variant_id"])
    # it asks for turntables as well: the planner proposed some, the daemon rendered them, Meta ran them as video
    turntables = rendered[rendered["kind"] == "turntable"]
    assert len(turntables) and set(rendered["kind"]) == {"still", "turntable"}
    for folder in turntables["render_dir"]:
        assert (Path(folder) / RenderManifest.load(Path(folder)).files["mp4"]).stat().st_size > 1000
    videos = ledger.publications(OTHER, "meta").set_index("variant_id")["video_id"]
    assert videos.reindex(turntables["variant_id"]).dropna().size >= 1
    assert videos.reindex(rendered.loc[rendered["kind"] == "still", "variant_id"]).isna().all()
    (sheets,) = [r.sheets for r in run.results if r.brief.name == OTHER]
    assert len(sheets) == GENERATIONS


def test_events_reached_the_store_through_kafka(loop_run):
    _, run, _ = loop_run
    assert run.event_counts["metric_snapshots"] > 0
    assert result_of(run).leaderboard["impressions"].sum() > 100_000


def test_the_best_live_variant_gets_more_traffic_as_the_loop_learns(loop_run):
    _, run, _ = loop_run
    result = result_of(run)
    shares = result.best_share.set_index("generation")["share"]
    assert list(shares.index) == [0, 1, 2]
    best = result.best_share.set_index("generation")["variant_id"]
    assert best[0] == best[1] == best[2], "the clearly best variant was live in every generation"
    # budgets move at most 20% a day (the brief's guardrail), so the winner ramps up over days, not at once
    assert shares[2] > shares[0] and shares[2] > 0.5


def test_every_stage_ran_through_dagster(loop_run):
    settings, _, _ = loop_run
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for stage in LOOP_ASSETS:
            assert instance.get_latest_materialization_event(stage.key) is not None, stage.key
        variants = instance.get_dynamic_partitions("variants")
        assert instance.get_materialized_partitions(renders.key) == set(variants)
        for brief in ("waterbottle-launch", OTHER):  # each brief's leaderboard is its own materialization
            assert brief in instance.get_materialized_partitions(policy.key)
        # every run was forked by the warm run server, each in a process of its own
        runs = instance.get_runs()
        pids = [r.tags.get(PID_TAG) for r in runs]
        assert runs and None not in pids and len(set(pids)) == len(pids)


def test_each_training_is_an_mlflow_run_with_leaderboard_and_contact_sheet(loop_run):
    settings, run, _ = loop_run
    result = result_of(run)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    runs = client.search_runs([experiment.experiment_id], "tags.`autoplay.brief` = 'waterbottle-launch'")
    assert len(runs) == GENERATIONS
    # artifacts and models beside the SQLite store, not in ./mlruns of whatever directory ran the loop
    assert experiment.artifact_location.startswith(
        Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.as_uri()
    )
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"leaderboard.csv", "leaderboard.json", "factor_lifts.csv", "plots", "contact_sheets"} <= artifacts
    assert all(sheet.is_file() for sheet in result.sheets) and len(result.sheets) == GENERATIONS
    metrics = runs[0].data.metrics
    assert {"expected_regret_per_trial", "offline_snips_challenger"} <= set(metrics)
    assert len(metrics) < 20  # per-variant figures are the leaderboard table, not a column each
    latest = max(runs, key=lambda r: int(r.data.tags["autoplay.generation"]))
    curve = client.get_metric_history(latest.info.run_id, "best_live_traffic_share")
    assert sorted(m.step for m in curve) == list(range(GENERATIONS))  # generations as steps
    table = json.loads(Path(client.download_artifacts(latest.info.run_id, "learning_curve.json")).read_text())
    logged = pd.DataFrame(table["data"], columns=table["columns"]).set_index("generation")
    cli = result.best_share.set_index("generation")  # the demo's table: the truly best live variant's share
    agree = [g for g in cli.index if logged.loc[g, "variant_id"] == cli.loc[g, "variant_id"]]
    assert GENERATIONS - 1 in agree  # by the last generation the posterior knows the winner
    for g in agree:  # where they pick the same variant, the plot and the table say the same share
        assert logged.loc[g, "best_share"] == pytest.approx(cli.loc[g, "share"], abs=1e-9)


def test_the_policy_is_a_registered_pyfunc_that_allocates_and_proposes_when_loaded(loop_run):
    settings, run, _ = loop_run
    result = result_of(run)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    name = "autoplay-" + yaml.safe_load(EXAMPLE_BRIEF.read_text())["name"]
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == GENERATIONS  # one per training
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
    assert {c.name for c in model.metadata.get_input_schema().inputs} == {"variant_id", "template", "colour", "aspect"}
    assert model.metadata.saved_input_example_info is not None
    with pytest.raises(Exception, match=r"variant ids \['vnever-seen'\] were not in this model's training"):
        model.predict(pd.DataFrame({"variant_id": ["vnever-seen"]}), params={"action": "allocate"})
    requirements = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion")) / "requirements.txt"
    assert "autoplay" not in requirements.read_text() and "scikit-learn==" in requirements.read_text()
    expected = None  # replay promotion from what each version logged: the champion is the one it chose
    for v in sorted(versions, key=lambda v: int(v.version)):
        metrics = client.get_run(v.run_id).data.metrics
        beats = expected is None or metrics["offline_snips_challenger"] > metrics["offline_snips_champion"]
        assert v.tags["autoplay.promotion"].startswith("promoted") == beats, (v.version, v.tags, metrics)
        expected = v.version if beats else expected
    assert champion.version == expected


def test_the_access_token_is_nowhere_in_run_config_or_mlflow(loop_run):
    settings, run, _ = loop_run
    token = run.sandbox["meta_token"]
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for run in instance.get_runs():
            assert token not in repr(run.run_config) and token not in repr(run.tags)
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    for run in client.search_runs([client.get_experiment_by_name(settings.mlflow_experiment).experiment_id]):
        assert token not in repr(run.data.params) and token not in repr(run.data.tags)


def test_both_channels_published_and_were_read_back(loop_run):
    from connectors.event_store import EventStore
    from connectors.ledger import Ledger

    settings, run, _ = loop_run
    back = result_of(run).read_back.set_index(["channel", "kind"])
    orders = back.loc[("shopify", "purchase")]
    assert orders["count"] > 0 and orders["joined_to_ads"] == orders["count"]  # every order joined to its ad
    # signed orders only: the shop's orders are exactly Meta's purchases (the ads stop when the run closes)
    assert orders["count"] == back.loc[("meta", "purchases"), "count"]
    assert back.loc[("pixel", "product_view"), "count"] > back.loc[("pixel", "add_to_cart"), "count"] > 0
    assert back.loc[("pixel", "purchase"), "count"] == orders["count"]  # the pixel saw them, apart from orders
    ledger = Ledger(EventStore(settings.event_store_path))
    meta, shop = ledger.publications("waterbottle-launch", "meta"), ledger.publications("waterbottle-launch", "shopify")
    assert set(shop["variant_id"]) == set(meta["variant_id"]) and (shop["status"] == "READY").all()
    assert shop["media_id"].str.startswith("gid://shopify/MediaImage/").all()


def test_no_token_of_either_channel_is_in_run_config_or_dagster_logs(loop_run):
    settings, run, _ = loop_run
    tokens = [run.sandbox["meta_token"], run.sandbox["shop_token"]]
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for run in instance.get_runs():
            logs = repr([e.message for e in instance.all_logs(run.run_id)])
            for token in tokens:
                assert token not in repr(run.run_config) and token not in logs
