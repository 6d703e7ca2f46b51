"""Idle benchmark: the CPU an `autoplay up` uses while every brief is done for the day.

A deployment on the real clock spends nearly all of its life like this: the daemon evaluates the sensor, the
code server answers, `up` polls Dagster's runs. The figures are CPU seconds per minute of wall time (60 is one
core kept busy), taken from /proc over every process the deployment started (Linux only).

  idle_cpu_s_per_min:       every process of the deployment together.
  idle_cpu_s_per_min.PART:  one part of it (``note`` names its command): up, the daemon, the code server(s),
                            the run server, the broker.
Usage: python bench/idle.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from demo import bench_env
from figures import figure

from pipelines.deployment import marked
from pipelines.settings import REPO, load_settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: What a process's command line says it is, first match wins.
PARTS = {
    "code_server": "dagster api grpc",
    "daemon": "pipelines.daemon",
    "run_server": "pipelines.warm_runs",
    "broker": "broker",
    "up": "autoplay up",
}


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def deployment_processes(up: int, lock: Path) -> dict[int, str]:
    """``up``, its children (the broker among them) and every process carrying its deployment's id (which its
    home lock holds), with its command."""
    deployment_id = lock.read_text().split()[1]
    children = Path(f"/proc/{up}/task/{up}/children").read_text().split()  # what up's main thread started
    commands = {}
    for pid in {up, *map(int, children), *marked(deployment_id)}:
        try:
            commands[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return commands


def watch(up: int, lock: Path, seconds: float, every_s: float = 0.5) -> tuple[dict[int, str], dict[int, float]]:
    """CPU seconds each process of the deployment used in the next ``seconds``, sampled every ``every_s``: a
    process that starts meanwhile counts from zero, one that ends counts up to its last sample (Dagster's
    daemon replaces the code servers it started every minute)."""
    processes = deployment_processes(up, lock)
    first = {pid: cpu_seconds(pid) for pid in processes}
    last = dict(first)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(every_s)
        for pid, command in deployment_processes(up, lock).items():
            processes.setdefault(pid, command)
            first.setdefault(pid, 0.0)
            last[pid] = max(last.get(pid, 0.0), cpu_seconds(pid))
    return processes, {pid: last[pid] - first[pid] for pid in processes}


def part_of(command: str) -> str:
    return next((part for part, marker in PARTS.items() if marker in command), "other")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    env = bench_env(root, REPO / "examples", "thumbnail")
    command = [str(REPO / ".venv" / "bin" / "autoplay"), "up", "--day-seconds", "86400", "--no-ui", "--no-console"]
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        for line in up.stdout:  # the brief's first day done: nothing more is due until the next one
            if " day g0 " in line and "success" in line:
                break
            if time.monotonic() > deadline:
                raise SystemExit("up never finished its first day; see " + str(root))
        time.sleep(5)  # the last run's process gone, the sensor's next evaluation found nothing due
        tree, used = watch(up.pid, load_settings(env).lock_path, args.seconds)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
    per_min = 60.0 / args.seconds
    note = f"autoplay up on examples/, idle for the day, over {args.seconds:.0f} s, 2-core CPU machine"
    figure("idle_cpu_s_per_min", sum(used.values()) * per_min, "cpu_s/min", note=note)
    parts: dict[str, tuple[float, str]] = {}
    for pid, seconds in used.items():
        part = part_of(tree[pid])
        total, _ = parts.get(part, (0.0, ""))
        parts[part] = (total + seconds, tree[pid][:80])
    for part, (seconds, example) in sorted(parts.items(), key=lambda kv: -kv[1][0]):
        figure(f"idle_cpu_s_per_min.{part}", seconds * per_min, "cpu_s/min", note=example)


if __name__ == "__main__":
    main()
