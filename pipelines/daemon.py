"""The deployment's Dagster daemon: `dagster-daemon run`, with its sensor loop run every ``sensor_loop_s``.

Dagster's sensor daemon waits out a fixed 5 s loop between evaluations of the sensors
(``dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME``; a sensor's ``minimum_interval_seconds`` can only lengthen
it). The autoplay sensor requests a brief's next step once its last run ended, and a step is 1-5 s of work,
so every step waited for that tick: 19 runs of the demo were created on 5 s marks, 126 s for 55 s of work.
Here the constant is set from ``AUTOPLAY_SENSOR_LOOP_S`` (default 1 s) before Dagster's daemon command runs;
everything else is Dagster's own. The autoplay sensor asks for at least 1 s between its evaluations (0 would
mean Dagster's default, 30 s), and a loop may start a few ms short of a second after the last evaluation
began and skip it, so at the default the evaluations come 1 or 2 s apart, about 1.5 s on average (half of
each in the demo). A 0.5 s loop evaluates it about every second; on 2 cores the demo was no faster for it.
Dagster is pinned (pyproject.toml): a release without the constant fails here, loudly, not slower.

The daemon and the webserver share one code server that the deployment starts (``code_server_command``), named
by a workspace file. Left to themselves, each spawns its own, and the daemon replaces its own every 60 s
(``dagster._daemon.controller.RELOAD_WORKSPACE_INTERVAL``, to pick up code changes), loading the definitions
again each time: 2.6 CPU seconds a minute (the import alone) on a deployment with nothing to do, taken from the
steps of a run that was going on. With a code server of its own, the daemon's reload asks it for the
definitions it holds. The daemon waits for it to answer before it loads its workspace (it would otherwise
record the location as failed until its next reload, a minute on). Code changes take a restart of ``up``.

``beating`` is the deployment's health check of a daemon that is alive but may be hung (stopped, deadlocked):
Dagster's daemon threads each write a heartbeat every 30 s, and a process none of whose threads has written one
for ``SILENT_S`` is hung.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import grpc
import yaml
from dagster import DagsterInstance
from dagster._daemon import sensor as sensor_daemon
from dagster._daemon.controller import DEFAULT_HEARTBEAT_INTERVAL_SECONDS
from grpc_health.v1 import health_pb2, health_pb2_grpc

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


#: The code server's Unix socket, set by the deployment for the daemon.
CODE_SERVER_VAR = "AUTOPLAY_CODE_SERVER"
#: The name of the code location, as Dagster named it when each process loaded ``-m pipelines.definitions``
#: itself (a sensor's state and its run keys are filed under it).
LOCATION_NAME = "pipelines.definitions"


def code_server_command(socket_path: str) -> list[str]:
    """Dagster's own code server over the definitions, loaded before it serves."""
    command = ["-m", "dagster", "api", "grpc", "-m", "pipelines.definitions", "--socket", socket_path]
    return [sys.executable, *command, "--location-name", LOCATION_NAME]


def write_workspace(path: Path, socket_path: str) -> Path:
    """The workspace file that points the daemon and the webserver at the code server."""
    location = {"grpc_server": {"socket": socket_path, "location_name": LOCATION_NAME}}
    path.write_text(yaml.safe_dump({"load_from": [location]}))
    return path


def code_server_answering(socket_path: str, timeout_s: float = 2.0) -> bool:
    """The code server's health check: it has loaded the definitions and serves (gRPC's health service)."""
    try:
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=timeout_s
            )
    except grpc.RpcError:
        return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def wait_for_code_server(socket_path: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not code_server_answering(socket_path):
        if time.monotonic() > deadline:
            raise SystemExit(f"dagster-daemon: the code server at {socket_path} did not answer in {timeout_s:.0f} s")
        time.sleep(0.1)


def main() -> int:
    from dagster._daemon.cli import main as dagster_daemon

    set_sensor_loop(load_settings().sensor_loop_s)
    if os.environ.get(CODE_SERVER_VAR):  # imported Dagster meanwhile; its workspace names that server
        wait_for_code_server(os.environ[CODE_SERVER_VAR])
    sys.argv[0] = "dagster-daemon"
    return dagster_daemon()


if __name__ == "__main__":
    sys.exit(main())
