"""`up` starts again a process of the deployment that exited, and gives up on one that keeps exiting."""

from __future__ import annotations

import sys

import pytest

from pipelines.deployment import RESTARTS, DeploymentError, Reporter, Running, spawn


class Restarts(Reporter):
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def restarted(self, name: str, code: int, log) -> None:
        self.seen.append((name, code))


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
        with pytest.raises(DeploymentError, match=r"crashy exited 4 times \(last code 3\); see .*crashy.log"):
            running.revive(reporter)
    finally:
        steady.stop(grace_s=1)
    assert reporter.seen == [("crashy", 3)] * RESTARTS  # the one still running is left alone
    assert log.read_text().split() == ["same-env"] * (RESTARTS + 1)  # its command and environment each time
