import os
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance, DefaultSensorStatus, DynamicPartitionsDefinition, build_sensor_context

from pipelines.assets import LOOP_ASSETS, brief_partitions, renders
from pipelines.definitions import autoplay_sensor, defs
from pipelines.resources import ClockResource, LoopResource
from tests.conftest import REPO, WATERBOTTLE


def test_definitions_hold_one_asset_per_stage_and_validate():
    defs.validate_loadable(defs)
    keys = {a.key.to_user_string() for a in LOOP_ASSETS}
    assert keys == {
        "plan", "renders", "publications", "review", "allocation", "performance_events", "event_store", "policy",
    }  # fmt: skip


def test_renders_are_partitioned_per_variant_in_the_gpu_pool():
    assert isinstance(renders.partitions_def, DynamicPartitionsDefinition)
    assert renders.partitions_def.name == "variants"
    assert renders.op.pool == "gpu"


def test_autoplay_runs_in_the_daemon_and_every_loop_asset_but_the_store_is_per_brief():
    assert defs.get_sensor_def("autoplay_sensor").default_status == DefaultSensorStatus.RUNNING
    per_brief = {a.key.to_user_string() for a in LOOP_ASSETS if a.partitions_def is brief_partitions}
    assert per_brief == {"plan", "publications", "review", "allocation", "performance_events", "policy"}


def test_the_sensor_adds_a_new_brief_and_opens_its_first_generation_once(tmp_path, brief_file):
    import shutil

    catalog = tmp_path / "briefs"
    (catalog / "one").mkdir(parents=True)
    shutil.copy(brief_file(), catalog / "one" / "brief.yaml")
    shutil.copy(WATERBOTTLE, catalog / "one" / "WaterBottle.glb")
    loop = LoopResource(briefs_dir=str(catalog), home=str(tmp_path / "home"))
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources={"loop": loop, "clock": FixedClock()})
        result = autoplay_sensor(context)
        (add,) = result.dynamic_partitions_requests
        assert add.partition_keys == ["waterbottle-launch"]
        (request,) = result.run_requests
        assert request.run_key == "waterbottle-launch:g0:open" and request.partition_key == "waterbottle-launch"
        assert [k.to_user_string() for k in request.asset_selection] == ["plan"]
        assert request.tags["autoplay/brief"] == "waterbottle-launch"


class FixedClock(ClockResource):
    def today(self) -> date:
        return date(2026, 11, 1)


def test_meta_token_is_an_env_var_reference_not_a_value():
    meta = defs.resources["meta"]
    assert "META_ACCESS_TOKEN" in repr(meta.access_token)
    assert "SHOPIFY_ACCESS_TOKEN" in repr(defs.resources["shopify"].access_token)


def test_a_removed_brief_gets_its_ads_paused_then_its_partition_dropped(tmp_path, brief_file):
    import shutil

    from connectors.meta import CreativeToPublish, MetaAds
    from connectors.sandbox.meta_graph import MetaGraphSandbox
    from creative.brief import load_brief
    from experiments.market import SimulatedMarket
    from pipelines.definitions import withdraw_job
    from pipelines.resources import MetaResource

    catalog = tmp_path / "briefs"
    (catalog / "one").mkdir(parents=True)
    shutil.copy(brief_file(), catalog / "one" / "brief.yaml")
    shutil.copy(WATERBOTTLE, catalog / "one" / "WaterBottle.glb")
    brief = load_brief(catalog / "one" / "brief.yaml")
    loop = LoopResource(briefs_dir=str(catalog), home=str(tmp_path / "home"))
    loop.ledger().record_brief(
        brief.name, brief.brand, str(catalog / "one" / "brief.yaml"), brief.model_dump(mode="json")
    )
    token = "withdraw-token-0123456789"
    with (
        MetaGraphSandbox(SimulatedMarket(), token, brief.meta.account_id, campaign_id=brief.meta.campaign_id) as sb,
        DagsterInstance.ephemeral() as instance,
    ):
        image = tmp_path / "still.jpg"
        from PIL import Image

        Image.new("RGB", (64, 64), "#1F6FEB").save(image)
        meta = MetaAds(token, brief.meta.account_id, brief.meta.page_id, brief.meta.campaign_id, graph_url=sb.url)
        ad = meta.publish(CreativeToPublish("vgone", brief.name, image, "https://x.example", "m"), 500, True).ad_id
        instance.add_dynamic_partitions("briefs", [brief.name])
        shutil.rmtree(catalog / "one")  # the brand's brief is removed from the catalog
        resources = {"loop": loop, "clock": FixedClock()}
        (request,) = autoplay_sensor(build_sensor_context(instance=instance, resources=resources)).run_requests
        assert request.job_name == "withdraw" and request.run_key == f"{brief.name}:withdraw"
        result = withdraw_job.execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags,
            resources={"loop": loop, "meta": MetaResource(access_token=token, graph_url=sb.url)},
        )  # fmt: skip
        assert result.success and sb.objects[ad]["status"] == "PAUSED"
        assert loop.ledger().is_paused(brief.name)
        after = autoplay_sensor(build_sensor_context(instance=instance, resources=resources))
        assert after.run_requests == []
        (drop,) = after.dynamic_partitions_requests
        assert drop.partition_keys == [brief.name] and type(drop).__name__.startswith("Delete")


@pytest.mark.slow
def test_dg_finds_and_checks_the_definitions_with_no_arguments(tmp_path):
    """`dg check defs` in the repository root loads the code location the pyproject names."""
    import subprocess
    import sys

    dg = Path(sys.executable).parent / "dg"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    done = subprocess.run([str(dg), "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr


BLOCK_BPY = """
import sys
class NoBlender:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('bpy', 'mathutils'):
            raise ImportError('bpy is not installed here')
sys.meta_path.insert(0, NoBlender())
"""


@pytest.mark.slow  # a fresh interpreter importing the definitions (3-5 s)
def test_the_code_location_ingest_endpoint_console_and_policy_model_need_no_blender(tmp_path):
    """bpy is the `render` extra: only render workers install it."""
    import subprocess
    import sys

    code = BLOCK_BPY + (
        "import pipelines.definitions, connectors.ingest_server, pipelines.console, experiments.policy_model\n"
        "from experiments.policy_model import model_requirements\n"
        "assert not [r for r in model_requirements() if r.startswith('bpy')]\n"
        "from rendering.batch import RenderUnavailable, render_batch\n"
        "from rendering.spec import RenderJob\n"
        f"job = RenderJob(model_path={str(WATERBOTTLE)!r}, template='studio', colour='#FFFFFF', aspect='1:1')\n"
        "try:\n"
        f"    render_batch([job], {str(tmp_path)!r})\n"
        "except RenderUnavailable as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "AUTOPLAY_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pip install 'autoplay[render]'" in done.stdout
    assert not list(tmp_path.glob("v*"))  # nothing half-rendered


@pytest.mark.slow  # a fresh interpreter importing the definitions (3-5 s)
def test_every_run_loads_the_code_without_the_training_libraries(tmp_path):
    """Each Dagster run starts a process that imports the definitions first: MLflow, scikit-learn, scipy.stats
    and matplotlib (about 4.5 s of imports here) load only in the steps that train, plan or plot."""
    import subprocess
    import sys

    heavy = ("mlflow", "sklearn", "scipy.stats", "matplotlib")
    code = f"import sys, pipelines.definitions\nprint(*sorted(m for m in sys.modules if m in {heavy}))"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "AUTOPLAY_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [], f"the definitions import {done.stdout.strip()}"


def test_a_run_makes_its_store_and_ledger_once_and_a_store_made_anew_gets_new_ones(tmp_path):
    """The steps ask the loop resource for the store and ledger dozens of times a run: made once per file, and
    made again when the file was removed and made anew (its tables are checked then, so nothing is missing)."""
    loop = LoopResource(briefs_dir=str(tmp_path / "briefs"), home=str(tmp_path / "home"))
    ledger = loop.ledger()
    ledger.record_brief("one", "Brand", "brief.yaml", {})
    assert loop.ledger() is ledger and loop.store() is ledger.store
    assert LoopResource(briefs_dir=str(tmp_path / "briefs"), home=str(tmp_path / "home")).ledger() is ledger
    Path(loop.store_path).unlink()
    fresh = loop.ledger()
    assert fresh is not ledger and fresh.briefs().empty  # a new file, with its tables
    fresh.record_brief("two", "Brand", "brief.yaml", {})
    assert fresh.briefs()["brief"].tolist() == ["two"]
