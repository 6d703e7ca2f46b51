"""`up` starts again a process of the deployment that exited or hung, and gives up on one that keeps exiting."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

import pytest

from pipelines import deployment
from pipelines.deployment import RESTARTS, UNANSWERED_CHECKS, DeploymentError, Reporter, Running, spawn
from pipelines.warm_runs import process_alive


class Restarts(Reporter):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def restarted(self, name: str, why: str, log) -> None:
        self.seen.append((name, why))


def test_an_exited_process_is_started_again_with_its_environment_until_it_exits_too_often(tmp_path):
    log = tmp_path / "logs" / "crashy.log"
    crashy = spawn("crashy", [sys.executable, "-c", "import os; print(os.environ['MARK']); raise SystemExit(3)"],
                   {"MARK": "same-env", "PATH": "/usr/bin:/bin"}, log)  # fmt: skip
    steady = spawn("steady", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "steady.log")
    running = Running(None, None, None, None, None, children=[crashy, steady])
    reporter = Restarts()
    try:
        for _ in range(RESTARTS):
            crashy.proc.wait(timeout=30)
            running.revive(reporter)
        crashy.proc.wait(timeout=30)
        with pytest.raises(DeploymentError, match=r"crashy ended 4 times \(last: exited with code 3\); see .*crash"):
            running.revive(reporter)
    finally:
        steady.stop(grace_s=1)
    assert reporter.seen == [("crashy", "exited with code 3")] * RESTARTS  # the one still running is left alone
    assert log.read_text().split() == ["same-env"] * (RESTARTS + 1)  # its command and environment each time


def test_a_process_that_stops_answering_is_killed_alone_and_started_again(tmp_path, monkeypatch):
    monkeypatch.setattr(deployment, "HEALTH_CHECK_S", 0.1)
    script = "import subprocess, time; print(subprocess.Popen(['sleep', '60']).pid, flush=True); time.sleep(60)"
    stuck = spawn("stuck", [sys.executable, "-c", script], {"PATH": "/usr/bin:/bin"}, tmp_path / "stuck.log")
    answers = iter([True, False, "raises", False, True])  # it answers once, then not, three times: hung

    def healthy() -> bool:
        answer = next(answers)
        if answer == "raises":  # a check that cannot be made counts as failed, and does not end `up`
            raise OSError("storage locked")
        return answer

    stuck.healthy, cleared = healthy, []
    stuck.before_restart = lambda: cleared.append(stuck.proc.poll())
    running, reporter = Running(None, None, None, None, None, children=[stuck]), Restarts()
    try:
        first = stuck.proc
        for _ in range(UNANSWERED_CHECKS + 1):
            time.sleep(0.15)
            running.revive(reporter)
        assert first.poll() == -signal.SIGKILL and stuck.proc is not first and stuck.proc.poll() is None
        assert cleared == [-signal.SIGKILL]  # what it left (the run server's socket) is cleared once it is gone
        forked = int((tmp_path / "stuck.log").read_text().split()[0])
        assert process_alive(forked)  # what it started (a run) goes on
        assert reporter.seen == [("stuck", "stopped answering (killed: code -9)")]
        time.sleep(0.15)
        running.revive(reporter)  # the new one answers: left alone
        assert len(reporter.seen) == 1
    finally:
        stuck.stop(grace_s=1)
        for pid in map(int, (tmp_path / "stuck.log").read_text().split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_process_still_starting_is_not_judged_until_it_has_answered_once(tmp_path, monkeypatch):
    monkeypatch.setattr(deployment, "HEALTH_CHECK_S", 0.05)
    slow = spawn("slow", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "slow.log")
    slow.healthy = lambda: False  # a webserver loading the code: nothing listens yet
    running, reporter = Running(None, None, None, None, None, children=[slow]), Restarts()
    try:
        for _ in range(UNANSWERED_CHECKS + 2):
            time.sleep(0.06)
            running.revive(reporter)
        assert reporter.seen == [] and slow.proc.poll() is None
    finally:
        slow.stop(grace_s=1)
