"""The deployment's Dagster daemon: `dagster-daemon run`, with the sensors evaluated every ``sensor_loop_s``.

Dagster's sensor daemon waits out a fixed 5 s loop between evaluations of the sensors
(``dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME``; a sensor's ``minimum_interval_seconds`` can only lengthen
it). The autoplay sensor requests a brief's next step once its last run ended, and a step is 1-5 s of work,
so every step waited for that tick: 19 runs of the demo were created on 5 s marks, 126 s for 55 s of work.
Here the constant is set from ``AUTOPLAY_SENSOR_LOOP_S`` (default 1 s) before Dagster's daemon command runs;
everything else is Dagster's own. A tick that finds every brief's run in flight reads Dagster's run storage
only. Dagster is pinned (pyproject.toml): a release without the constant fails here, loudly, not slower.

``beating`` is the deployment's health check of a daemon that is alive but may be hung (stopped, deadlocked):
Dagster's daemon threads each write a heartbeat every 30 s, and a process none of whose threads has written one
for ``SILENT_S`` is hung.
"""

from __future__ import annotations

import sys
import time

from dagster import DagsterInstance
from dagster._daemon import sensor as sensor_daemon
from dagster._daemon.controller import DEFAULT_HEARTBEAT_INTERVAL_SECONDS

from pipelines.settings import load_settings


def set_sensor_loop(seconds: float) -> None:
    if not isinstance(getattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME", None), int | float):
        raise RuntimeError("this Dagster has no dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME: see pipelines/daemon.py")
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = seconds


#: No heartbeat from any of the daemon's threads for this long: hung (three of Dagster's heartbeat intervals).
SILENT_S = 3.0 * DEFAULT_HEARTBEAT_INTERVAL_SECONDS


def beating(instance: DagsterInstance, started_at: float, now: float | None = None) -> bool:
    """Whether the daemon started at ``started_at`` (epoch seconds) has beaten within ``SILENT_S``. A heartbeat
    from before it started is a former daemon's; until ``SILENT_S`` after its start, none yet is not a hang."""
    if instance.daemon_skip_heartbeats_without_errors:  # this instance writes none: nothing to go by
        return True
    beats = [beat.timestamp for beat in instance.get_daemon_heartbeats().values()]
    return (time.time() if now is None else now) - max([started_at, *beats]) <= SILENT_S


def main() -> int:
    from dagster._daemon.cli import main as dagster_daemon

    set_sensor_loop(load_settings().sensor_loop_s)
    sys.argv[0] = "dagster-daemon"
    return dagster_daemon()


if __name__ == "__main__":
    sys.exit(main())
