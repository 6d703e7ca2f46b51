"""Runs start in a process that already holds the code: a Dagster run launcher and the warm run server it asks.

Dagster's DefaultRunLauncher has its code server start a new interpreter for every run, which loads Dagster
and the definitions again: about 6 s of every run on a 2-core machine, and the loop makes a run per brief and
day. Here the deployment starts one run server that imports the definitions once and forks a process per run;
the fork runs it as `dagster api execute_run` would (Dagster's `_execute_run_command_body`, the body dagster-
celery's run task calls too). The daemon's run coordinator, run queue, concurrency limits and run monitoring are
Dagster's own; only the process the run lives in changes.

Where no run server is configured (``AUTOPLAY_RUN_SERVER`` unset: `dagster dev` on this home, a cluster with its
own launcher), the launcher is Dagster's default. A request carries one run id; the socket is this user's only.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import re
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from dagster import DefaultRunLauncher

#: The run server's Unix socket, set by the deployment for the daemon and every process it starts.
RUN_SERVER_VAR = "AUTOPLAY_RUN_SERVER"
PID_TAG = "autoplay/run_pid"
#: What the stages import where they use it (kept off the definitions' import path, which the daemon and the
#: webserver load too): the run server imports it once, between its first requests, so no run pays it again
#: (about 4 s a training run: MLflow's SQL store 1.1 s, scikit-learn's models 0.5 s).
TRAINING_MODULES = (
    "experiments.policy_model",
    "mlflow.pyfunc",
    "mlflow.store.tracking.sqlalchemy_store",
    "sklearn.linear_model",
    "scipy.stats",
)
#: How long a launch keeps asking a server that took the request and went away (the deployment replaces a hung
#: server within about 10 s; the new one loads the code in 5-10 s).
LAUNCH_PATIENCE_S = 90.0
RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class RunServerError(RuntimeError):
    """The run server refused a request, could not be reached, or did not answer."""


class RunServerUnavailable(RunServerError):
    """Nothing listens on the run server's socket: the request was never sent, so nothing was started."""


class RunServerRefused(RunServerError):
    """The run server answered and would not start the run (a malformed request): asking again will not help."""


def request_run(socket_path: str, run_id: str, timeout_s: float = 30.0, starting_s: float = 60.0) -> int:
    """Ask the run server to start ``run_id``; returns the pid of the run's process. A server still loading
    the code (no socket yet) is waited for up to ``starting_s``; one whose socket refuses (it died) for 2 s."""
    started = time.monotonic()
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout_s)
            try:
                conn.connect(socket_path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                patience = starting_s if isinstance(exc, FileNotFoundError) else min(starting_s, 2.0)
                if time.monotonic() - started >= patience:
                    raise RunServerUnavailable(f"run server at {socket_path}: {exc}") from exc
                time.sleep(0.2)
                continue
            except OSError as exc:  # a full accept queue, a socket not ours: not reached, nothing sent
                raise RunServerUnavailable(f"run server at {socket_path}: {exc}") from exc
            try:
                conn.sendall(json.dumps({"run_id": run_id}).encode() + b"\n")
                answer = json.loads(conn.makefile("rb").readline() or b"{}")
            except (OSError, ValueError) as exc:
                raise RunServerError(f"run server at {socket_path}: {exc}") from exc
        if "error" in answer:
            raise RunServerRefused(f"run server at {socket_path} refused run {run_id}: {answer['error']}")
        if "pid" not in answer:  # it went away mid-request (killed, or killed as hung): it may have forked
            raise RunServerError(f"run server at {socket_path} gave no answer for run {run_id}")
        return int(answer["pid"])


def listening(socket_path: str, timeout_s: float = 5.0) -> bool:
    """Whether the run server answers (a request it refuses, to start nothing)."""
    try:
        request_run(socket_path, "ping", timeout_s=timeout_s, starting_s=0)
    except RunServerRefused:
        return True
    except RunServerError:
        return False
    return False


def answering(socket_path: str, timeout_s: float = 2.0) -> bool:
    """The deployment's health check of a live run server: it answers within ``timeout_s``, or it has no socket
    yet (it is loading the code: serve() removes the old socket first)."""
    return not Path(socket_path).exists() or listening(socket_path, timeout_s)


class WarmRunLauncher(DefaultRunLauncher):
    """Dagster's run launcher for the deployment: a run goes to the warm run server when one is configured,
    else to the code server as Dagster's default launcher sends it."""

    def launch_run(self, context) -> None:
        socket_path = os.environ.get(RUN_SERVER_VAR)
        if not socket_path:
            return super().launch_run(context)
        run = context.dagster_run
        deadline, sent = time.monotonic() + LAUNCH_PATIENCE_S, False
        while True:
            try:
                request_run(socket_path, run.run_id)  # the run's process tags the run with its pid itself
                return None
            except RunServerRefused:
                raise
            except RunServerUnavailable as exc:
                if not sent:  # never sent: nothing started; the loop goes on unattended, as Dagster would
                    self._instance.report_engine_event(
                        f"{exc}; launching the run with Dagster's default launcher", run, cls=self.__class__
                    )
                    return super().launch_run(context)
                # sent before to a server that went away, which may have forked it: only a run server's fork,
                # which takes the run's lock, may start it now (a default launcher's worker would not)
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)
            except RunServerError as exc:  # hung or killed mid-request: the deployment starts a new server, and
                sent = True  # a run the old one did fork makes a second fork stand down (run_claim)
                if time.monotonic() >= deadline:
                    raise
                self._instance.report_engine_event(f"{exc}; asking again", run, cls=self.__class__)
                time.sleep(1.0)

    def terminate(self, run_id: str) -> bool:
        """The Dagster UI's Terminate: SIGTERM to the run's process, which Dagster turns into an interrupt."""
        run = self._instance.get_run_by_id(run_id) if self.has_instance else None
        if run is None or PID_TAG not in run.tags:
            return super().terminate(run_id)
        if run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(int(run.tags[PID_TAG]), signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run):
        """Run monitoring: a run whose process is gone (kill -9, OOM) is reported failed by the daemon."""
        from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

        if PID_TAG not in run.tags:  # started by Dagster's default launcher, which offers no check: not judged
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not started by the run server: not checked")
        pid = int(run.tags[PID_TAG])
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process {pid} is gone")


def process_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie's run is over: its parent has not collected it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state != "Z"


@contextmanager
def run_claim(locks: Path, run_id: str) -> Iterator[bool]:
    """Whether this process is the one to execute ``run_id``: an exclusive lock on the run's file, held for the
    run. A launch asked again after a server went away mid-request may fork the run a second time; the second
    process finds the lock taken and stands down."""
    locks.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = locks / run_id
    while True:
        handle = open(path, "a")  # noqa: SIM115  # held for the run, closed below
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            yield False
            return
        try:
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                break  # locked the file that is there, not one its last holder removed as we opened it
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)  # a later claim makes a new file, and finds the run finished
        handle.close()


def sweep_claims(locks: Path) -> None:
    """Remove the lock files no process holds (a run's process killed with SIGKILL leaves its file)."""
    for path in locks.glob("*") if locks.is_dir() else ():
        with contextlib.suppress(OSError), open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()


def _execute_run(run_id: str, locks: Path) -> int:
    """In the forked process: the run, as `dagster api execute_run` executes it, unless another process has it."""
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import setup_interrupt_handlers

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server's SIG_IGN would make Blender's exit unreadable
    signal.signal(signal.SIGINT, signal.default_int_handler)
    setup_interrupt_handlers()  # SIGTERM interrupts the run, which reports itself failed
    with DagsterInstance.get() as instance, run_claim(locks, run_id) as claimed:
        if not claimed:
            print(f"run {run_id}: another process has it, standing down", flush=True)
            return 0
        run = None
        try:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status == DagsterRunStatus.CANCELING:  # Terminate came before its pid
                instance.report_run_canceled(run, message="canceled before its process started")
                return 0
            if run is None or run.status not in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING):
                print(f"run {run_id}: {run.status.value if run else 'unknown'}, not started again", flush=True)
                return 0
            instance.add_run_tags(run_id, {PID_TAG: str(os.getpid())})  # run monitoring and Terminate find it
        except Exception as exc:  # the run would sit STARTING until run monitoring's start timeout
            if run is not None:
                with contextlib.suppress(Exception):
                    instance.report_run_failed(run, message=f"the run's process could not start it: {exc}")
            raise
        return _execute_run_command_body(run_id, instance, lambda _: None, set_exit_code_on_failure=True)


def _answer(conn: socket.socket, listener: socket.socket, locks: Path) -> None:
    """One request: a run id in, the pid of its process out (or why not)."""
    conn.settimeout(10)
    try:
        request = json.loads(conn.makefile("rb").readline(4096) or b"{}")
        run_id = request.get("run_id") if isinstance(request, dict) else None
    except (OSError, ValueError):
        run_id = None
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        conn.sendall(json.dumps({"error": 'expected one line: {"run_id": "<uuid>"}'}).encode() + b"\n")
        return
    pid = os.fork()
    if pid == 0:  # the run's process: never returns into the server loop
        code = 1
        try:
            listener.close()
            conn.close()
            code = _execute_run(run_id, locks)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(f"run {run_id}: process {pid}", flush=True)
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def warm_up() -> None:
    """Load what every run would load again, before the server listens: the definitions, Dagster's run body and
    its instance (its storage's SQLAlchemy and Alembic modules and migration scripts, about 0.9 s the first time
    in a process, 0.1 s after)."""
    import dagster._cli.api  # noqa: F401  # the body of `dagster api execute_run`
    from dagster import DagsterInstance

    import pipelines.definitions  # noqa: F401

    with DagsterInstance.get() as instance:  # no connection outlives it: SQLite storage opens one per use
        instance.get_runs(limit=1)


def training_warm_ups() -> list[Callable[[], object]]:
    """What only the training and plotting runs use, a piece each. The server loads them between its first
    requests, so the first runs of a loop (a plan, renders, days) do not wait for them; the first training run
    comes days later."""
    from experiments.reporting import pyplot

    imports = [partial(importlib.import_module, module) for module in TRAINING_MODULES]
    return [*imports, pyplot, _mlflow_package_map]  # pyplot: matplotlib on the Agg backend, as the plots use it


def _mlflow_package_map() -> None:
    """MLflow maps installed packages to modules (a scan of every installed distribution, 0.5-2 s) the first time
    a process logs a model, to check the model's requirements: once here, for every training run (a private
    function: a release without it only makes training runs slower)."""
    requirements = importlib.import_module("mlflow.utils.requirements_utils")
    getattr(requirements, "_init_modules_to_packages_map", lambda: None)()


def serve(socket_path: str) -> None:
    """Load the code once, then fork a process per run asked for, until stopped."""
    started = time.monotonic()
    path = Path(socket_path)
    path.unlink(missing_ok=True)  # a dead server's socket: launchers wait for this one rather than give up
    locks = path.with_name(path.name + ".runs")  # a lock per run in flight (run_claim)
    sweep_claims(locks)
    warm_up()

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is this user's only
    try:
        listener.bind(socket_path)
    finally:
        os.umask(old_umask)
    listener.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # runs are collected as they end
    print(f"run server ready at {socket_path} in {time.monotonic() - started:.1f}s", flush=True)
    training = training_warm_ups()
    while True:
        if training and not select.select([listener], [], [], 0)[0]:  # nobody waiting: load a piece
            training.pop(0)()
            if not training:
                print(f"run server: training modules loaded, {time.monotonic() - started:.1f}s", flush=True)
            continue
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        with conn:
            try:
                _answer(conn, listener, locks)
            except OSError as exc:  # a client that went away: the next one is served
                print(f"request failed: {exc}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
