from dagster import DefaultScheduleStatus, DefaultSensorStatus, DynamicPartitionsDefinition

from pipelines.assets import LOOP_ASSETS, renders
from pipelines.definitions import defs


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


def test_autoplay_is_off_until_switched_on():
    assert defs.get_schedule_def("autoplay").default_status == DefaultScheduleStatus.STOPPED
    assert defs.get_sensor_def("render_sensor").default_status == DefaultSensorStatus.STOPPED


def test_meta_token_is_an_env_var_reference_not_a_value():
    meta = defs.resources["meta"]
    assert "META_ACCESS_TOKEN" in repr(meta.access_token)
    assert "SHOPIFY_ACCESS_TOKEN" in repr(defs.resources["shopify"].access_token)
