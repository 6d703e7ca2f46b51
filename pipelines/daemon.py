"""The deployment's Dagster daemon: `dagster-daemon run`, with the sensors evaluated every ``sensor_loop_s``.

Dagster's sensor daemon waits out a fixed 5 s loop between evaluations of the sensors
(``dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME``; a sensor's ``minimum_interval_seconds`` can only lengthen
it). The autoplay sensor requests a brief's next step once its last run ended, and a step is 1-5 s of work,
so every step waited for that tick: 19 runs of the demo were created on 5 s marks, 126 s for 55 s of work.
Here the constant is set from ``AUTOPLAY_SENSOR_LOOP_S`` (default 1 s) before Dagster's daemon command runs;
everything else is Dagster's own. A tick that finds every brief's run in flight reads Dagster's run storage
only. Dagster is pinned (pyproject.toml): a release without the constant fails here, loudly, not slower.
"""

from __future__ import annotations

import sys

from dagster._daemon import sensor as sensor_daemon

from pipelines.settings import load_settings


def set_sensor_loop(seconds: float) -> None:
    if not isinstance(getattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME", None), int | float):
        raise RuntimeError("this Dagster has no dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME: see pipelines/daemon.py")
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = seconds


def main() -> int:
    from dagster._daemon.cli import main as dagster_daemon

    set_sensor_loop(load_settings().sensor_loop_s)
    sys.argv[0] = "dagster-daemon"
    return dagster_daemon()


if __name__ == "__main__":
    sys.exit(main())
