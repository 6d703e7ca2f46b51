"""The deployment's daemon sets Dagster's sensor loop (and says so when a Dagster release no longer has it), and is
judged hung by its heartbeats."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from dagster._daemon import sensor as sensor_daemon

from pipelines.daemon import SILENT_S, beating, set_sensor_loop
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


def test_a_daemon_is_hung_once_none_of_its_threads_has_beaten_for_three_heartbeat_intervals():
    now, started = 10_000.0, 9_000.0

    def instance(*beats: float, skip: bool = False) -> SimpleNamespace:
        heartbeats = {f"DAEMON_{i}": SimpleNamespace(timestamp=t) for i, t in enumerate(beats)}
        return SimpleNamespace(daemon_skip_heartbeats_without_errors=skip, get_daemon_heartbeats=lambda: heartbeats)

    assert beating(instance(now - 5, now - 200), started, now)  # one thread beating is a live process
    assert not beating(instance(now - SILENT_S - 1, now - 300), started, now)
    assert not beating(instance(), started, now)  # started 1000 s ago and never beat
    # just started: a former daemon's old beats, or none yet, are not this one's silence
    assert beating(instance(now - 5000), now - 10, now) and beating(instance(), now - 10, now)
    assert beating(instance(skip=True), started, now)  # an instance that writes no heartbeats: nothing to judge
