"""The warm run server and its launcher: forged requests are refused without starting anything, and run
monitoring sees a run whose process died. (The loop's runs going through it: tests/pipelines/test_loop_e2e.py.)"""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from pipelines.warm_runs import (
    PID_TAG,
    RunServerError,
    RunServerUnavailable,
    WarmRunLauncher,
    answering,
    listening,
    request_run,
    run_claim,
    sweep_claims,
)
from tests.conftest import REPO


@pytest.fixture(scope="module")
def run_server(tmp_path_factory):
    """One run server for the module's tests (it loads the definitions, seconds): none leaves it changed."""
    tmp_path = tmp_path_factory.mktemp("run_server")
    path = str(tmp_path / "runs.sock")
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    log = tmp_path / "run-server.log"
    server = subprocess.Popen([sys.executable, "-m", "pipelines.warm_runs", path], env=env, cwd=REPO,
                              stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not listening(path):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield path, server
    finally:
        server.kill()
        server.wait()


def raw(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(15)
        conn.connect(path)
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        return conn.makefile("rb").read()


def children(pid: int) -> list[str]:
    return open(f"/proc/{pid}/task/{pid}/children").read().split()


@pytest.mark.slow  # a real run server, loading the definitions (seconds)
def test_forged_and_garbage_requests_are_refused_and_start_nothing(run_server):
    path, server = run_server
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # this user's only
    forged = [
        b"\xff\xfe not json\n",
        b"[1, 2, 3]\n",
        b'{"run_id": "../../etc/passwd"}\n',
        b'{"run_id": ["a"]}\n',
        b"",
    ]
    for request in forged:
        answer = json.loads(raw(path, request))
        assert "pid" not in answer and "run_id" in answer["error"], (request[:40], answer)
    try:  # a line past the server's 4 KiB is refused unread: the answer, or a reset for what it left unread
        assert "pid" not in json.loads(raw(path, b'{"run_id": "' + b"a" * 100_000 + b'"}\n'))
    except ConnectionResetError:
        pass
    with pytest.raises(RunServerError, match="refused run not-a-run"):
        request_run(path, "not-a-run", starting_s=0)
    assert server.poll() is None and children(server.pid) == []  # nothing was forked, and it still serves
    assert listening(path)


@pytest.mark.slow  # a real run server, loading the definitions (seconds)
def test_a_run_id_is_forked_into_a_process_that_reports_an_unknown_run_and_exits(run_server):
    path, server = run_server
    pid = request_run(path, "0f0f0f0f-0000-4000-8000-000000000000")
    deadline = time.monotonic() + 60
    while str(pid) in children(server.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert str(pid) not in children(server.pid)  # it ended and was collected: no zombie left
    assert server.poll() is None


def test_run_monitoring_sees_the_run_process_alive_then_gone():
    launcher = WarmRunLauncher()
    sleeper = subprocess.Popen(["sleep", "60"])
    run = SimpleNamespace(tags={PID_TAG: str(sleeper.pid)})
    assert launcher.check_run_worker_health(run).status.name == "RUNNING"
    sleeper.kill()
    sleeper.wait()
    health = launcher.check_run_worker_health(run)
    assert health.status.name == "FAILED" and str(sleeper.pid) in health.msg
    # a run the default launcher started (the server was down) is not failed for want of a pid
    assert launcher.check_run_worker_health(SimpleNamespace(tags={})).status.name == "RUNNING"


def test_a_dead_run_server_is_unavailable_within_seconds_and_a_starting_one_is_waited_for(tmp_path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(tmp_path / "dead.sock"))  # its file is there, nothing listens: a server that died
    started = time.monotonic()
    with pytest.raises(RunServerUnavailable):  # never sent: the launcher may start the run another way
        request_run(str(tmp_path / "dead.sock"), "0f0f0f0f-0000-4000-8000-000000000000")
    assert time.monotonic() - started < 10
    dead.close()
    started = time.monotonic()
    with pytest.raises(RunServerUnavailable):  # no socket yet: a server loading the code, waited for
        request_run(str(tmp_path / "later.sock"), "0f0f0f0f-0000-4000-8000-000000000000", starting_s=1.0)
    assert time.monotonic() - started >= 1.0


def test_a_run_forked_twice_is_executed_once(tmp_path):
    """A launch asked again after its server went away mid-request may fork the run twice: one claims it."""
    locks, run_id = tmp_path / "runs", "0f0f0f0f-0000-4000-8000-000000000000"
    with run_claim(locks, run_id) as first:
        second = subprocess.run(
            [sys.executable, "-c", f"from pathlib import Path; from pipelines.warm_runs import run_claim\n"
             f"with run_claim(Path({str(locks)!r}), {run_id!r}) as claimed: print(claimed)"],
            capture_output=True, text=True, cwd=REPO, check=True,
        )  # fmt: skip
        assert first and second.stdout.strip() == "False"
    assert not (locks / run_id).exists()  # released with the run: nothing piles up
    with run_claim(locks, run_id) as again:
        assert again


@pytest.mark.slow  # a real run server, loading the definitions (seconds)
def test_a_hung_run_server_is_told_from_one_loading_the_code(run_server, tmp_path):
    path, server = run_server
    assert answering(path)
    os.kill(server.pid, signal.SIGSTOP)  # alive, its socket there, no answer
    try:
        started = time.monotonic()
        assert not answering(path, timeout_s=1.0)
        assert time.monotonic() - started < 5
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert answering(str(tmp_path / "loading.sock"))  # no socket yet: a server loading the code is not hung


def test_a_killed_runs_lock_file_is_swept_and_a_held_one_kept(tmp_path):
    locks = tmp_path / "runs"
    locks.mkdir()
    (locks / "0f0f0f0f-0000-4000-8000-00000000dead").touch()  # its process died of SIGKILL: nobody holds it
    with run_claim(locks, "0f0f0f0f-0000-4000-8000-000000000000") as held:
        assert held
        sweep_claims(locks)
        assert [p.name for p in locks.iterdir()] == ["0f0f0f0f-0000-4000-8000-000000000000"]
