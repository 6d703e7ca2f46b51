"""``autoplay up``: everything the loop needs on one machine, and Dagster's own automation turning it.

It starts what the embedded defaults need (the Kafka broker, the Meta and Shopify sandboxes with their
simulated market, the ingest endpoint), then Dagster's code server, the Dagster daemon (which runs
``autoplay_sensor``) and the Dagster webserver, with an environment and a workspace file that point them at
what it started. It has no loop of its own: it follows Dagster's event log to show progress, and on the
embedded default it moves the sandbox's clock a day on once every brief is done for the day and the day's
seconds have passed. ``autoplay demo`` is the same thing bounded: it stops once every brief has served its
generations, or at the first failed run.

One home, one deployment: a lock file refuses a second one. On start, runs left STARTED by a killed
process are marked failed in Dagster and MLflow.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from connectors.artifacts import FolderStore
from connectors.asgi_server import BackgroundServer
from connectors.event_store import EventStore, session
from connectors.ingest_server import IngestApp, IngestConfig, IngestServer
from connectors.kafka_broker import EmbeddedBroker, ensure_topics
from connectors.kafka_events import EventProducer
from connectors.ledger import Action, Ledger
from connectors.processes import die_with_parent, free_port
from creative.brief import Brief
from experiments import cadence
from experiments.catalog import Catalog, load_catalog
from experiments.market import SimulatedMarket
from pipelines import stages
from pipelines.assets import BRIEF_TAG, STEP_TAG, step_label
from pipelines.channels import Sandboxes, sandbox_marker, serve_sandboxes
from pipelines.daemon import (
    CODE_SERVER_VAR,
    beating,
    code_server_answering,
    code_server_command,
    write_workspace,
)
from pipelines.definitions import IN_FLIGHT
from pipelines.retries import latest_run, mark_to_run_again, to_run_again, waits_for_a_person, why_again
from pipelines.settings import REPO, Settings, is_postgres, kafka_client_config
from pipelines.warm_runs import RUN_SERVER_VAR, answering, listening
from pipelines.workers import DEFAULT_QUEUE, GPU_QUEUE, RedisServer, worker_command

BIN = Path(sys.executable).parent
PRODUCTION_INSTANCE = REPO / "dagster_home" / "production" / "dagster.yaml"
CATALOG_READ_S = 5.0  # how often `up` reads the briefs folder again (the sensor reads it on every tick)
ACTOR_DEPLOYMENT = "autoplay up"  # the audit log's actor for what the deployment itself does
RESTARTS, RESTART_WINDOW_S = 3, 600.0  # a process that exits more often than this is broken, not unlucky
HEALTH_CHECK_S, UNANSWERED_CHECKS = 5.0, 3  # a process with a health check is hung after three failed in a row


class DeploymentError(RuntimeError):
    """The deployment cannot start or stopped on a failure; the message says which brief, stage and cause."""


class AlreadyRunning(DeploymentError):
    pass


class Reporter:
    """What `up` and `demo` tell the person watching; the CLI prints it."""

    def started(self, running: Running) -> None: ...
    def run_changed(self, brief: str, step: str, status: str, detail: str) -> None: ...
    def renders(self, brief: str, done: int, total: int) -> None: ...
    def day(self, today: str) -> None: ...
    def restarted(self, name: str, why: str, log: Path) -> None: ...
    def brief_refused(self, error: str) -> None: ...


@contextmanager
def home_lock(settings: Settings, deployment_id: str) -> Iterator[None]:
    """Only one deployment per home: a second `up` or `demo` refuses, naming the first one's process. The lock
    holds the deployment's id, cleared on a clean stop: an id left there is a deployment killed with SIGKILL,
    and whatever of it outlived it (Dagster's log tails, a broker) is stopped now."""
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    held = os.pread(fd, 128, 0).decode(errors="replace").split()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(
            f"{settings.home} is in use by autoplay process {held[0] if held else 'another process'} "
            f"(lock {settings.lock_path}); stop it first, or set AUTOPLAY_HOME to another folder"
        ) from None
    try:
        if len(held) == 2:
            reap(held[1])
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {deployment_id}".encode(), 0)
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def prepare_dagster_home(settings: Settings) -> None:
    """A new Dagster home gets the shipped config: SQLite on one machine, PostgreSQL storage when
    ``AUTOPLAY_DAGSTER_POSTGRES_URL`` is set (``--postgres``). An existing home keeps its own."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    source = PRODUCTION_INSTANCE if settings.dagster_postgres_url else REPO / "dagster_home" / "dagster.yaml"
    if not config.exists():
        shutil.copy(source, config)
    elif settings.dagster_postgres_url and "postgres" not in config.read_text():
        raise DeploymentError(
            f"--postgres: DAGSTER_HOME={settings.dagster_home} already holds an instance on SQLite; "
            f"use a new DAGSTER_HOME (or copy {PRODUCTION_INSTANCE} into it)"
        )


def ensure_database(url: str) -> str:
    """Create the PostgreSQL database ``url`` names when it is not there yet (MLflow's store beside
    Dagster's); returns ``url``. A server that cannot be reached fails naming it, without its password."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2
    from psycopg2 import sql

    from connectors.secrets import redact_uri

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    try:  # psycopg2 takes a plain postgresql:// URL, without SQLAlchemy's +driver
        con = psycopg2.connect(urlunsplit(parts._replace(scheme="postgresql", path="/postgres")))
    except psycopg2.Error as exc:
        raise DeploymentError(f"PostgreSQL at {redact_uri(url)}: {str(exc).strip()}") from None
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", [name])
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    finally:
        con.close()
    return url


def in_flight_runs(instance: DagsterInstance) -> list[DagsterRun]:
    return [record.dagster_run for record in instance.get_run_records(RunsFilter(statuses=IN_FLIGHT))]


def fail_interrupted(
    instance: DagsterInstance, runs: list[DagsterRun], tracking_uri: str, reason: str, ledger: Ledger
) -> tuple[int, int]:
    """``runs`` were in flight when the deployment stopped, or a killed one left them: those still in flight
    are marked failed (Dagster), as are MLflow runs left RUNNING. Called with the home lock held, so no run of
    this home can still be alive. A step of the loop among them failed for no fault of its own (the stop cut
    it short, or its process reported the stop's SIGTERM as its failure): it is marked to be run again
    (pipelines/retries.py), which the audit log records."""
    failed = 0
    for run in runs:
        now = instance.get_run_by_id(run.run_id) or run
        if DagsterRunStatus.CANCELING in (run.status, now.status):  # a person's Terminate: theirs, not ours
            if now.status in IN_FLIGHT:
                instance.report_run_canceled(now, message=reason)
            continue
        if now.status in IN_FLIGHT:
            instance.report_run_failed(now, message=reason)
            failed += 1
        elif now.status != DagsterRunStatus.FAILURE:
            continue  # it finished in the meantime
        if BRIEF_TAG in run.tags:
            mark_to_run_again(instance, run, f"interrupted: {reason}")
            step = step_label(run.tags)
            ledger.log_action(Action(run.tags[BRIEF_TAG], "retry", ACTOR_DEPLOYMENT, f"{step}: {reason}",
                                     {"failed_run": run.run_id}))  # fmt: skip
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    mlflow_runs = 0
    if experiments:
        for run in client.search_runs(experiments, "attributes.status = 'RUNNING'"):
            client.set_terminated(run.info.run_id, status="FAILED")
            mlflow_runs += 1
    return failed, mlflow_runs


def dagster_environment(settings: Settings, bootstrap: str, sandboxes: Sandboxes | None, overrides: dict) -> dict:
    """The environment of the daemon, the webserver and every run they launch: the same settings as ours,
    pointed at what we started. Tokens travel in the environment only (never in run config)."""
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(settings.dagster_home),
            "AUTOPLAY_HOME": str(settings.home),
            "AUTOPLAY_BRIEFS": str(settings.briefs_dir),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AUTOPLAY_EVENTS_TOPIC": settings.events_topic,
            "AUTOPLAY_DEAD_LETTER_TOPIC": settings.dead_letter_topic,
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "AUTOPLAY_RENDER_PROFILE": settings.render_profile,
            "AUTOPLAY_SEED": str(settings.seed),
            "AUTOPLAY_EXECUTOR": settings.executor,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.mlflow_artifact_location:
        env["AUTOPLAY_MLFLOW_ARTIFACTS"] = settings.mlflow_artifact_location
    if settings.max_generations is not None:
        env["AUTOPLAY_MAX_GENERATIONS"] = str(settings.max_generations)
    if settings.celery_broker:
        env["AUTOPLAY_CELERY_BROKER"] = settings.celery_broker
    if settings.artifacts:
        env["AUTOPLAY_ARTIFACTS"] = settings.artifacts
    if settings.artifacts_cache:
        env["AUTOPLAY_ARTIFACTS_CACHE"] = str(settings.artifacts_cache)
    if settings.dagster_postgres_url:
        env["AUTOPLAY_DAGSTER_POSTGRES_URL"] = settings.dagster_postgres_url
    if sandboxes is not None:
        env |= {
            "META_GRAPH_URL": sandboxes.meta.url,
            "META_ACCESS_TOKEN": sandboxes.meta_token,
            "SHOPIFY_ADMIN_URL": sandboxes.shop.url,
            "SHOPIFY_ACCESS_TOKEN": sandboxes.shop_token,
            "AUTOPLAY_SANDBOX_CLOCK_URL": sandboxes.meta.url,
        }
    return env | overrides


@dataclass
class Child:
    """A process we started in its own process group; stopping it stops everything it started."""

    name: str
    proc: subprocess.Popen
    log: Path
    stop_signal: int = signal.SIGTERM
    env: dict = field(default_factory=dict, repr=False)  # what it was started with, to start it again
    restarts: list[float] = field(default_factory=list)  # when it was started again (monotonic seconds)
    healthy: Callable[[], bool] | None = field(default=None, repr=False)  # it answers (alive is not enough)
    unanswered: int = 0  # health checks failed in a row
    answered: bool = False  # its health check passed since it was (re)started: it is judged from then on
    checked: float = 0.0  # when its health was last checked (monotonic seconds)
    started_at: float = field(default_factory=time.time)  # when it was last started (epoch seconds)
    before_restart: Callable[[], None] | None = field(default=None, repr=False)  # clear what the last one left

    def stop(self, grace_s: float = 3.0) -> None:
        stop_all([self], grace_s=grace_s)

    def hung(self) -> bool:
        """Alive but not answering: its health check failed ``UNANSWERED_CHECKS`` times, ``HEALTH_CHECK_S`` apart."""
        if self.healthy is None or time.monotonic() - self.checked < HEALTH_CHECK_S:
            return False
        self.checked = time.monotonic()
        try:
            answered = self.healthy()
        except Exception:  # a check that cannot be made (storage locked, say) is a check failed
            answered = False
        if answered:
            self.answered, self.unanswered = True, 0
            return False
        if not self.answered:  # still starting (loading the code): judged once it has answered
            return False
        self.unanswered += 1
        return self.unanswered >= UNANSWERED_CHECKS

    def restart(self) -> None:
        """The same command in the same environment, after it exited (its log goes on)."""
        if self.before_restart is not None:
            self.before_restart()
        started = spawn(self.name, list(self.proc.args), self.env, self.log)
        self.proc, self.unanswered, self.answered = started.proc, 0, False
        self.checked, self.started_at = time.monotonic(), time.time()
        self.restarts.append(time.monotonic())


#: Every process of a deployment carries this variable, whoever started it: Dagster starts run workers in
#: sessions of their own, and a render worker under a run is out of reach of the daemon's process group.
DEPLOYMENT_VAR = "AUTOPLAY_DEPLOYMENT"


def marked(deployment: str) -> list[int]:
    """The live processes (zombies aside) carrying ``deployment`` in their environment, this one excepted.
    Reads /proc, so on a system without it there are none."""
    marker = f"{DEPLOYMENT_VAR}={deployment}".encode()
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int(entry.name) == os.getpid() or (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # ourselves, or already dead and waiting for its parent to collect it
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return pids


def stop_all(children: list[Child], deployment: str | None = None, grace_s: float = 3.0) -> list[int]:
    """Stop a deployment within one grace period, whatever it left: its stop signal to every child's process
    group and SIGTERM to every process carrying ``deployment`` (run workers and Blender, in sessions of their
    own), all at once; SIGKILL to whatever is still there after ``grace_s``. One grace for everything, not one
    per child or per kind (a Celery worker's warm shutdown waits for the step it runs; a daemon mid-tick takes
    its time). Returns the pids of the marked processes found."""
    found = marked(deployment) if deployment else []

    def outside(pid: int, groups: set[int]) -> bool:  # a live child's group gets its own signal (Celery: SIGQUIT)
        try:
            return os.getpgid(pid) not in groups
        except ProcessLookupError:
            return False

    def left() -> tuple[list[Child], list[int]]:
        alive = [c for c in children if c.proc.poll() is None]
        groups = {c.proc.pid for c in alive}
        return alive, [p for p in marked(deployment) if outside(p, groups)] if deployment else []

    for kill in (False, True):
        groups, pids = left()
        for child in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL if kill else child.stop_signal)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + (2.0 if kill else grace_s)
        while any(left()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(left()):
            break
    return found


def reap(deployment: str, grace_s: float = 3.0) -> list[int]:
    """Stop every process left that carries ``deployment`` in its environment (a deployment killed with
    SIGKILL left them); returns their pids."""
    return stop_all([], deployment, grace_s)


def spawn(name: str, command: list[str], env: dict, log: Path) -> Child:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
            cwd=REPO,
        )
    return Child(name, proc, log, env=dict(env))


@dataclass
class Running:
    """A deployment that is up: where its parts are, and what it started."""

    settings: Settings
    catalog: Catalog
    instance: DagsterInstance
    sandboxes: Sandboxes | None
    market: SimulatedMarket | None
    children: list[Child] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)
    storefront: IngestApp | None = None  # the storefront endpoint's app, on the embedded default
    _ledger: Ledger | None = field(default=None, repr=False)

    def admit(self, brief: Brief) -> None:
        """A brief added while the sandboxes run: its ad account and product open there, and its storefront's
        origins may post pixel events."""
        if self.sandboxes is not None:
            self.sandboxes.admit(brief)
        if self.storefront is not None and not brief.storefront_origins <= self.storefront.config.allowed_origins:
            config = self.storefront.config
            self.storefront.config = replace(config, allowed_origins=config.allowed_origins | brief.storefront_origins)

    def ledger(self) -> Ledger:
        """The loop's ledger, opened once (each opening checks the file's tables)."""
        if self._ledger is None:
            self._ledger = Ledger(EventStore(self.settings.event_store_path))
        return self._ledger

    def revive(self, reporter: Reporter) -> None:
        """Start again any process of the deployment that exited (the run server or a worker killed, the daemon
        crashed) or failed its health check (the run server, the code server, the daemon, the webserver or
        MLflow's server hung): the loop runs unattended. A hung one is killed alone, not its process group: the
        runs the server forked go on. One that ends more than ``RESTARTS`` times in ``RESTART_WINDOW_S`` stops
        the deployment, naming its log."""
        for child in self.children:
            code = child.proc.poll()
            if code is not None:
                why = f"exited with code {code}"
            elif child.hung():
                child.proc.kill()
                try:
                    why = f"stopped answering (killed: code {child.proc.wait(timeout=10)})"
                except subprocess.TimeoutExpired:  # in an uninterruptible wait (a disk, a driver): not ours to fix
                    raise DeploymentError(
                        f"{child.name} stopped answering and did not die of SIGKILL within 10 s; see {child.log}"
                    ) from None
            else:
                continue
            recent = [t for t in child.restarts if time.monotonic() - t < RESTART_WINDOW_S]
            if len(recent) >= RESTARTS:
                raise DeploymentError(f"{child.name} ended {len(recent) + 1} times (last: {why}); see {child.log}")
            child.restart()
            reporter.restarted(child.name, why, child.log)


@contextmanager
def deployment(
    settings: Settings,
    market: SimulatedMarket | None = None,
    ui_port: int | None = 3000,
    stale_reason: str = "its process was stopped before the run finished",
    console_port: int | None = None,
    empty_ok: bool = False,
) -> Iterator[Running]:
    """Everything up, in order, and always stopped in reverse order, children and their children included.
    ``empty_ok``: an empty catalog is a deployment waiting for its first brief (``up``), not an error (``demo``)."""
    from dagster import Definitions

    from pipelines.definitions import defs

    Definitions.validate_loadable(defs)  # a broken code location fails here, not silently in the daemon
    catalog = load_catalog(settings.briefs_dir)
    if not catalog.briefs and not (empty_ok and not catalog.errors):
        problems = "; ".join(catalog.errors.values()) or f"no */brief.yaml under {settings.briefs_dir}"
        raise DeploymentError(f"no brief to run: {problems}")
    with ExitStack() as stack:
        deployment_id = f"{os.getpid()}-{uuid.uuid4().hex}"  # every process it starts carries it
        stack.enter_context(home_lock(settings, deployment_id))
        prepare_dagster_home(settings)
        os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
        if settings.dagster_postgres_url:  # the instance's dagster.yaml reads it from the environment
            os.environ["AUTOPLAY_DAGSTER_POSTGRES_URL"] = ensure_database(settings.dagster_postgres_url)
        if is_postgres(settings.mlflow_tracking_uri):
            ensure_database(settings.mlflow_tracking_uri)
        instance = stack.enter_context(DagsterInstance.get())
        mlflow_store = settings.mlflow_tracking_uri  # read directly at the end, when the server is gone
        ledger = Ledger(EventStore(settings.event_store_path))
        fail_interrupted(instance, in_flight_runs(instance), mlflow_store, stale_reason, ledger)
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            bootstrap = stack.enter_context(EmbeddedBroker(log_path=settings.home / "kafka.log")).bootstrap_servers
        ensure_topics(bootstrap, {settings.events_topic: 4, settings.dead_letter_topic: 1}, **kafka_client_config())
        sandboxes = None
        if not settings.meta_graph_url and not os.environ.get("META_ACCESS_TOKEN"):
            market = market or SimulatedMarket(seed=settings.seed)
            sandboxes = stack.enter_context(serve_sandboxes(list(catalog.briefs.values()), market))
            producer = EventProducer(bootstrap, settings.events_topic, **kafka_client_config())
            stack.callback(producer.close)
            origins = frozenset().union(*(b.storefront_origins for b in catalog.briefs.values()))
            sandboxes.shop.origin = sorted(origins)[0] if origins else sandboxes.shop.origin
            origins |= {sandboxes.shop.origin}
            endpoint = stack.enter_context(IngestServer(producer, IngestConfig(sandboxes.app_secret, origins)))
            sandboxes.shop.webhook_url = f"{endpoint.url}/webhooks/shopify"
            sandboxes.shop.pixel_url = f"{endpoint.url}/pixel"
            marker = sandbox_marker(settings)
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # sandbox tokens, this user only
            with os.fdopen(fd, "w") as f:
                import json

                json.dump(sandboxes.addresses(), f)
            stack.callback(marker.unlink, missing_ok=True)
        if settings.executor == "celery" and not settings.celery_broker:
            redis = stack.enter_context(RedisServer(settings.home / "redis"))
            settings = settings.replace(celery_broker=redis.url)
        logs = settings.home / "logs"
        env = dagster_environment(settings, bootstrap, sandboxes, {DEPLOYMENT_VAR: deployment_id})
        if is_postgres(settings.mlflow_tracking_uri):  # production storage: MLflow's tracking server over it
            server, url = start_mlflow_server(settings, env, logs)
            stack.callback(server.stop)
            settings = settings.replace(mlflow_tracking_uri=url, mlflow_artifact_location=None)
            env = dagster_environment(settings, bootstrap, sandboxes, {DEPLOYMENT_VAR: deployment_id})
        running = Running(settings, catalog, instance, sandboxes, market, _ledger=ledger)
        running.storefront = endpoint.ingest if sandboxes is not None else None
        running.where = {
            "briefs": str(settings.briefs_dir),
            "kafka": bootstrap,
            "dagster_home": str(settings.dagster_home),
            "mlflow": settings.mlflow_tracking_uri,
        }
        if sandboxes is not None:
            running.where |= {"meta_sandbox": sandboxes.meta.url, "shopify_sandbox": sandboxes.shop.url}
        if settings.executor == "celery":
            running.where["celery_broker"] = settings.celery_broker
            running.children += start_workers(settings, env, logs)
        run_server, socket_path = start_run_server(settings, env, logs)
        running.children.append(run_server)
        env[RUN_SERVER_VAR] = socket_path
        code_socket = socket_path_in(settings.home, "code-server.sock")
        code_server = spawn("dagster-code-server", code_server_command(code_socket), env, logs / "code-server.log")
        running.children.append(code_server)
        code_server.before_restart = partial(Path(code_socket).unlink, missing_ok=True)
        workspace = str(write_workspace(settings.home / "workspace.yaml", code_socket))
        daemon = spawn(
            "dagster-daemon",
            [sys.executable, "-m", "pipelines.daemon", "run", "-w", workspace],
            env | {CODE_SERVER_VAR: code_socket},
            logs / "dagster-daemon.log",
        )
        running.children.append(daemon)
        daemon.healthy = lambda: beating(instance, daemon.started_at)
        wait_ready(run_server, lambda: listening(socket_path), "the run server")
        run_server.healthy = partial(answering, socket_path)
        run_server.before_restart = partial(Path(socket_path).unlink, missing_ok=True)  # launches wait for the new one
        wait_ready(code_server, partial(code_server_answering, code_socket), "Dagster's code server")
        code_server.healthy = partial(code_server_answering, code_socket)
        if ui_port is not None:
            web = spawn(
                "dagster-webserver",
                [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(ui_port)],
                env,
                logs / "dagster-webserver.log",
            )
            web.healthy = partial(http_ok, f"http://127.0.0.1:{ui_port}/server_info")
            running.children.append(web)
            running.where["dagster_ui"] = f"http://127.0.0.1:{ui_port}"
        if console_port is not None:
            from pipelines.console import create_app

            web_console = stack.enter_context(BackgroundServer(create_app(settings), port=console_port, name="console"))
            running.where["console"] = web_console.url + "/"
        try:
            yield running
        finally:
            flying = in_flight_runs(instance)
            stop_all(running.children, deployment_id)
            stopped = "autoplay up was stopped before the run finished"
            fail_interrupted(instance, flying, mlflow_store, stopped, running.ledger())


def wait_ready(child: Child, ready, what: str, timeout_s: float = 120.0) -> None:
    """Poll ``ready()`` until it is true; a child that exits or takes longer than ``timeout_s`` is stopped and
    fails naming its log."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if child.proc.poll() is not None or time.monotonic() > deadline:
            child.stop()
            raise DeploymentError(f"{what} did not start; see {child.log}")
        time.sleep(0.25)


def start_mlflow_server(settings: Settings, env: dict, logs: Path, timeout_s: float = 120.0) -> tuple[Child, str]:
    """MLflow's tracking server over the PostgreSQL store, with its artifacts in the artifact store (served
    through it, so the runs need no object-store credentials): what every run logs to and data scientists open.
    The store's URL travels in the environment, never on a command line or in a log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    destination = settings.mlflow_artifact_location or (settings.home / "mlartifacts").as_uri()
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server_env = env | {"MLFLOW_BACKEND_STORE_URI": settings.mlflow_tracking_uri,
                        "MLFLOW_ARTIFACTS_DESTINATION": destination}  # fmt: skip
    server = spawn("mlflow-server", command, server_env, logs / "mlflow-server.log")
    server.healthy = partial(http_ok, f"{url}/health")
    wait_ready(server, server.healthy, "the MLflow tracking server", timeout_s)
    return server, url


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """A server's health check: ``url`` answers 200 within ``timeout_s``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return answer.status == 200
    except OSError:
        return False


def start_run_server(settings: Settings, env: dict, logs: Path) -> tuple[Child, str]:
    """The warm run server (pipelines.warm_runs): every run of the daemon forks from a process that loaded the
    code once. Returns the child and its socket, which the daemon's environment names; it loads the code while
    the daemon starts (``wait_ready`` with ``listening``)."""
    path = socket_path_in(settings.home, "run-server.sock")
    command = [sys.executable, "-m", "pipelines.warm_runs", path]
    return spawn("run-server", command, env, logs / "run-server.log"), path


def socket_path_in(home: Path, name: str) -> str:
    """A Unix socket's path under ``home``, or in the temporary folder where that would be too long (at most
    107 bytes)."""
    path = home / name
    if len(str(path)) > 100:
        path = Path(tempfile.gettempdir()) / f"autoplay-{uuid.uuid4().hex[:12]}-{name}"
    return str(path)


def start_workers(settings: Settings, env: dict, logs: Path) -> list[Child]:
    """``render_workers`` Celery workers on the gpu queue and one on the default queue, in the deployment's
    environment."""
    children = []
    remote = not isinstance(settings.artifact_store(), FolderStore)
    for queue, count in ((GPU_QUEUE, settings.render_workers), (DEFAULT_QUEUE, 1)):
        for i in range(1, count + 1):
            command, extra = worker_command(settings, queue, f"{queue}-{i}")
            if remote and queue == GPU_QUEUE:  # its own copy of the renders, as on a machine of its own
                extra["AUTOPLAY_ARTIFACTS_CACHE"] = str(settings.home / "workers" / f"{queue}-{i}" / "renders")
            path = os.pathsep.join(filter(None, [extra["PYTHONPATH"], env.get("PYTHONPATH")]))
            worker = spawn(f"celery-{queue}-{i}", command, env | extra | {"PYTHONPATH": path},
                           logs / f"celery-{queue}-{i}.log")  # fmt: skip
            # Celery's cold shutdown: SIGTERM would wait for the step it runs; unacknowledged, the step is
            # handed out again when workers are back
            children.append(replace(worker, stop_signal=signal.SIGQUIT))
    return children


@dataclass
class Watch:
    """What the watcher has seen of Dagster's runs: statuses reported, render progress, failures."""

    statuses: dict[str, str] = field(default_factory=dict)
    renders: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def describe_failure(instance: DagsterInstance, run) -> str:
    """The stage (step) and the cause of a failed run, from its event log."""
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.step_failure_data.error
        cause = error.cause.message if error.cause is not None else error.message
        return f"stage {entry.dagster_event.step_key}: {cause.strip().splitlines()[-1] if cause.strip() else cause}"
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE):
        return f"run failed: {entry.message}"
    return "run failed (see the Dagster UI)"


def follow(running: Running, watch: Watch, reporter: Reporter) -> None:
    """Report runs that changed status, and render progress of runs in flight, from Dagster's event log."""
    instance = running.instance
    newest: set[str] = set()  # briefs whose newest run has been seen: the records come newest first
    for record in instance.get_run_records(RunsFilter(tags={}), limit=50):
        run = record.dagster_run
        brief = run.tags.get(BRIEF_TAG)
        if brief is None:
            continue
        is_newest = brief not in newest
        newest.add(brief)
        step = step_label(run.tags)
        status = run.status.value
        if watch.statuses.get(run.run_id) != status:
            watch.statuses[run.run_id] = status
            detail = ""
            if run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                cause = describe_failure(instance, run) if run.status == DagsterRunStatus.FAILURE else "canceled"
                if to_run_again(run):
                    detail = f"{cause} (to be run again: {why_again(run)})"
                elif not is_newest:  # its brief went on past it (a later day, a re-execution from the UI)
                    detail = f"{cause} (left behind)"
                else:
                    detail = cause
                    watch.failures.append(
                        f"brief {brief}, {run.tags.get(STEP_TAG)} step (run {run.run_id}): {cause}; once its cause"
                        f" is fixed, `autoplay retry --brief {brief}` runs it again"
                    )
            reporter.run_changed(brief, step, status, detail)
        if run.tags.get(STEP_TAG) == "render" and run.status == DagsterRunStatus.STARTED:
            seen = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_OBSERVATION)
            if seen and len(seen) != watch.renders.get(run.run_id):
                watch.renders[run.run_id] = len(seen)
                meta = seen[-1].dagster_event.asset_observation_data.asset_observation.metadata
                reporter.renders(brief, len(seen), int(meta["of"].value))


@dataclass
class Standing:
    """Every brief's progress as the ledger last said, and what Dagster's runs and the clock were then: the
    ledger is read again only when a run has ended or started, the day moved or the catalog changed, so a
    deployment idle for the day does not keep opening the event store (which the console and runs use)."""

    seen: tuple = ()
    progress: dict[str, cadence.BriefProgress] = field(default_factory=dict)

    def read(self, running: Running, today) -> dict[str, cadence.BriefProgress] | None:
        """None while a run is in flight (most of the time): the event store is left to it."""
        names = tuple(running.catalog.briefs)
        if in_flight_runs(running.instance):  # any run: one of a brief that just left the catalog too
            return None
        latest = tuple((r.run_id, r.status) if (r := latest_run(running.instance, n)) else None for n in names)
        seen = (names, latest, today)
        if seen != self.seen:
            with session(running.settings.event_store_path):
                ledger = running.ledger()
                self.progress = {n: stages.progress(ledger, n) for n in names}
            if in_flight_runs(running.instance):  # a run began as the ledger was read
                return None
            self.seen = seen
        return self.progress


def brief_idle_today(running: Running, name: str, today, progress: cadence.BriefProgress) -> bool:
    """Nothing due for this brief today, nothing in flight; a brief whose last run failed counts as idle
    (its failed step waits for a person, the others go on) unless that run is marked to be run again."""
    if waits_for_a_person(latest_run(running.instance, name)):
        return True
    brief = running.catalog.briefs[name]
    return (
        cadence.next_step(name, progress, today, brief.autoplay.days_per_generation, running.settings.max_generations)
        is None
    )


def all_finished(running: Running, progress: dict[str, cadence.BriefProgress]) -> bool:
    """Every brief has served its generations and been trained on."""
    return all(
        cadence.finished(progress[n], b.autoplay.days_per_generation, running.settings.max_generations)
        for n, b in running.catalog.briefs.items()
    )


def turn(
    running: Running,
    reporter: Reporter,
    stop: threading.Event,
    day_seconds: float,
    bounded: bool,
    poll_s: float = 0.5,
) -> Watch:
    """Follow the loop until ``stop`` is set, or (``bounded``) until every brief has finished or a run failed.

    On the embedded default, the sandbox's day moves on once every brief is idle for today and at least
    ``day_seconds`` have passed since the last move. With a real clock, days come by themselves."""
    watch, standing, refused = Watch(), Standing(), set()
    last_move = last_read = time.monotonic()
    while not stop.is_set():
        running.revive(reporter)
        follow(running, watch, reporter)
        if bounded and watch.failures:
            raise DeploymentError(watch.failures[0])
        if time.monotonic() - last_read >= CATALOG_READ_S:  # a new brief file starts its loop
            served, last_read = running.catalog, time.monotonic()
            running.catalog = load_catalog(running.settings.briefs_dir)
            for brief in running.catalog.briefs.values():
                running.admit(brief)
            for path, error in running.catalog.errors.items():
                if path in served.paths.values() and path not in refused:  # a served brief's file no longer valid
                    if bounded:
                        raise DeploymentError(f"a brief's file stopped validating while it ran: {error}")
                    reporter.brief_refused(error)  # the sensor leaves it out until the file validates again
            refused = set(running.catalog.errors)
        today = running.sandboxes.meta.today if running.sandboxes is not None else None
        progress = standing.read(running, today) if bounded or running.sandboxes is not None else None
        if progress is not None and bounded and all_finished(running, progress):
            follow(running, watch, reporter)
            return watch
        if progress is not None and running.sandboxes is not None and time.monotonic() - last_move >= day_seconds:
            if all(brief_idle_today(running, n, today, progress[n]) for n in running.catalog.briefs):
                reporter.day(str(running.sandboxes.meta.advance(1)))
                last_move = time.monotonic()
        stop.wait(poll_s)
    return watch
