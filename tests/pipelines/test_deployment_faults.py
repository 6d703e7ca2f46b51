"""`autoplay up` and `demo` under faults: a failing stage, SIGTERM with SIGINT ignored, a second deployment
on the same home, a killed process's runs. Each starts the real CLI in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from dagster import DagsterInstance
from dagster._core.storage.tags import RUN_KEY_TAG

from connectors.processes import free_port
from pipelines.assets import STEP_TAG
from pipelines.retries import attempt_key, latest_run, to_run_again
from tests.conftest import EXAMPLE_BRIEF, REPO, WATERBOTTLE, deployment_env

pytestmark = pytest.mark.slow
AUTOPLAY = str(Path(sys.executable).parent / "autoplay")


def catalog(root: Path, model: Path = WATERBOTTLE) -> Path:
    """One brief in its own folder, beside a copy of its model (as a brand would hand them over)."""
    brief = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    folder = root / "briefs" / "one"
    folder.mkdir(parents=True)
    (folder / model.name).write_bytes(model.read_bytes())
    brief["product"]["model"] = model.name
    brief["autoplay"] |= {"days_per_generation": 1}
    (folder / "brief.yaml").write_text(yaml.safe_dump(brief))
    return root / "briefs"


def processes_with(value: str) -> list[int]:
    """Processes whose environment holds ``value`` (our unique home): what a deployment left running."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if value.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def code_servers(home: Path) -> list[int]:
    """Dagster code servers among what the deployment on ``home`` runs."""
    found = []
    for pid in processes_with(str(home)):
        with contextlib.suppress(OSError):
            if b"dagster\0api\0grpc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def test_a_failing_stage_ends_the_demo_non_zero_naming_brief_stage_and_cause(tmp_path, broker):
    broken = tmp_path / "broken.blend"
    broken.write_bytes(b"BLENDER-v300" + os.urandom(600))  # a .blend is only opened by Blender: fails the render
    catalog(tmp_path, broken)
    env = deployment_env(tmp_path, broker)
    started = time.monotonic()
    out = subprocess.run([AUTOPLAY, "demo", "--generations", "1"], env=env, capture_output=True, text=True,
                         timeout=240, cwd=REPO)  # fmt: skip
    took = time.monotonic() - started
    assert out.returncode == 1, out.stdout + out.stderr
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith("error: brief waterbottle-launch, render step"), out.stderr
    assert "renders" in message and "broken.blend" in message
    assert message.endswith("`autoplay retry --brief waterbottle-launch` runs it again"), message  # what to do
    assert "Traceback" not in out.stderr
    assert took < 120  # the failure is reported within seconds of the run failing, not after a hang
    assert processes_with(str(tmp_path / "home")) == []


def test_a_brief_file_garbled_while_it_runs_ends_the_demo_non_zero_naming_the_file(tmp_path, broker):
    """A bounded run whose only brief stops validating mid-run used to end 'finished', exit 0, reporting
    nothing, and stopped with the brief's render run still in flight."""
    briefs = catalog(tmp_path)
    env = deployment_env(tmp_path, broker)
    demo = subprocess.Popen([AUTOPLAY, "demo", "--generations", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)  # fmt: skip
    lines = []
    try:
        for line in demo.stdout:
            lines.append(line)
            if "render g0" in line and "started" in line:  # the brief is being served
                (briefs / "one" / "brief.yaml").write_text("name: one\nproduct: [unclosed\n  x: 1\n")
                break
        output = "".join(lines) + demo.stdout.read()
        assert demo.wait(timeout=120) == 1, output
    finally:
        demo.kill()
    message = output.strip().splitlines()
    assert any(
        line.startswith("error: a brief's file stopped validating while it ran:") and "brief.yaml" in line
        for line in message
    ), output
    assert "finished in" not in output and "Traceback" not in output
    assert processes_with(str(tmp_path / "home")) == []


def test_sigterm_stops_up_within_10s_even_with_sigint_ignored_and_a_second_up_refuses(tmp_path, broker):
    catalog(tmp_path)
    env = deployment_env(tmp_path, broker)

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    command = [AUTOPLAY, "up", "--ui-port", str(free_port()), "--console-port", "0", "--day-seconds", "5"]
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=ignore_sigint, cwd=REPO)  # fmt: skip
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if "open g0" in line and "success" in line:  # the daemon turns the loop
                break
        else:
            pytest.fail("up never turned the loop: " + "".join(lines))
        [console_url] = [line.split()[-1] for line in lines if line.split()[1:2] == ["console"]]
        assert requests.get(console_url + "signin", timeout=10).status_code == 200  # up serves the console
        second = subprocess.run([AUTOPLAY, "up", "--no-ui"], env=env, capture_output=True, text=True, timeout=60,
                                cwd=REPO)  # fmt: skip
        assert second.returncode == 2 and "is in use by autoplay process" in second.stderr, second.stderr
        # the daemon and the webserver share one code server: neither loads the code in one of its own
        assert len(code_servers(tmp_path / "home")) == 1
        while not any("render g0" in line and "started" in line for line in lines):  # stopped under a run
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(up.stdout.readline())
        started = time.monotonic()
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if up.poll() is None:
            up.kill()
    assert took < 10, f"up took {took:.1f}s to stop"
    assert up.returncode == 0
    time.sleep(0.5)
    assert processes_with(str(tmp_path / "home")) == []
    # the render the stop cut short failed for no fault of its own: marked to run again, and audited
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        render = latest_run(instance, "waterbottle-launch")
        assert render.tags[STEP_TAG] == "render" and to_run_again(render), render.tags
        key = render.tags[RUN_KEY_TAG]
        assert attempt_key(instance, "waterbottle-launch", key) == f"{key}:retry-{render.run_id[:8]}"
    audit = subprocess.run([AUTOPLAY, "audit", "--json"], env=env, capture_output=True, text=True, cwd=REPO)
    [retry] = [a for a in json.loads(audit.stdout)["actions"] if a["action"] == "retry"]
    assert retry["actor"] == "autoplay up" and "render g0" in retry["reason"], retry


def test_stopping_reaps_processes_that_left_the_process_group():
    """A render worker under a Dagster run lives in a session of its own: stopping `up` finds it by the
    deployment's variable, not by its process group."""
    from pipelines.deployment import DEPLOYMENT_VAR, reap

    env = {**os.environ, DEPLOYMENT_VAR: f"test-{os.getpid()}"}
    stray = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)  # not ours: left alone
    marker = f"{DEPLOYMENT_VAR}=test-{os.getpid()}".encode()
    deadline = time.monotonic() + 10
    while marker not in Path(f"/proc/{stray.pid}/environ").read_bytes().split(b"\0"):  # until it has exec'd
        assert time.monotonic() < deadline, "the stray process never started"
        time.sleep(0.01)
    try:
        assert reap(f"test-{os.getpid()}") == [stray.pid]
        assert stray.wait(timeout=5) in (-signal.SIGTERM, -signal.SIGKILL)
        assert other.poll() is None
    finally:
        stray.kill()
        other.kill()


def test_a_killed_or_hung_run_server_a_killed_daemon_and_code_server_are_started_again_and_the_loop_goes_on(
    tmp_path, broker
):
    catalog(tmp_path)
    env = deployment_env(tmp_path, broker)
    command = [AUTOPLAY, "up", "--no-ui", "--console-port", "0", "--day-seconds", "2"]
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    lines: list[str] = []

    def read_until(wanted, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines.append(up.stdout.readline())
            if wanted(lines[-1]):
                return
        pytest.fail("never saw it: " + "".join(lines))

    def child_running(program: bytes) -> int:  # up's own child, not a run the server forked
        [pid] = [p for p in processes_with(str(tmp_path / "home")) if program in Path(f"/proc/{p}/cmdline").read_bytes()
                 and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(up.pid)]  # fmt: skip
        return pid

    try:
        read_until(lambda line: "open g0" in line and "success" in line)
        for program in (b"pipelines.warm_runs", b"pipelines.daemon", b"dagster\0api\0grpc"):
            os.kill(child_running(program), signal.SIGKILL)
        restarted = {"run-server", "dagster-daemon", "dagster-code-server"}
        while restarted:  # in whatever order the deployment finds them gone
            read_until(
                lambda line, names=restarted: any(f"{n} exited with code -9: started again" in line for n in names), 30
            )
            restarted = {name for name in restarted if f"{name} exited" not in lines[-1]}
        seen = len(lines)
        read_until(lambda line: "success" in line)  # the next stage ran
        log = (tmp_path / "home" / "logs" / "run-server.log").read_text()
        started_after = log.rsplit("run server ready", 1)[1]
        assert "run " in started_after and ": process " in started_after, (log, lines[seen:])  # forked by the new one
        # hung, not dead: alive with its socket there, answering nothing; launches meanwhile wait, then ask again
        os.kill(child_running(b"pipelines.warm_runs"), signal.SIGSTOP)
        read_until(lambda line: "run-server stopped answering" in line and "started again" in line, 60)
        read_until(lambda line: "success" in line)
        assert not any("failure" in line for line in lines), "".join(lines)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
    assert (tmp_path / "home" / "logs" / "run-server.log").read_text().count("run server ready") == 3
