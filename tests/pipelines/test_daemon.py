"""The deployment's daemon sets Dagster's sensor loop, and says so when a Dagster release no longer has it."""

from __future__ import annotations

import pytest
from dagster._daemon import sensor as sensor_daemon

from pipelines.daemon import set_sensor_loop
from pipelines.settings import SettingsError, load_settings


def test_the_sensor_loop_is_set_from_the_setting_and_a_dagster_without_the_constant_is_refused(monkeypatch):
    assert sensor_daemon.MIN_INTERVAL_LOOP_TIME == 5  # Dagster's own, which the daemon replaces
    monkeypatch.setattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME", 5)
    set_sensor_loop(load_settings({"AUTOPLAY_SENSOR_LOOP_S": "0.5"}).sensor_loop_s)
    assert sensor_daemon.MIN_INTERVAL_LOOP_TIME == 0.5
    monkeypatch.delattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME")
    with pytest.raises(RuntimeError, match="MIN_INTERVAL_LOOP_TIME"):
        set_sensor_loop(1.0)
    with pytest.raises(SettingsError, match="AUTOPLAY_SENSOR_LOOP_S"):
        load_settings({"AUTOPLAY_SENSOR_LOOP_S": "0"})  # a busy loop is refused
