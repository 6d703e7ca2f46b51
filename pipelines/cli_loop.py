"""The loop's commands: ``up``, ``demo``, ``pause``, ``resume``, ``status`` and ``audit``.

``status`` and ``audit`` read only the ledger and stores, so they work with nothing running.
"""

from __future__ import annotations

import enum
import getpass
import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from pipelines.cli_common import console, err, fail, skip_teardown
from pipelines.settings import load_settings

ACTOR_CLI = f"cli:{getpass.getuser()}"


def _stop_on_signals() -> threading.Event:
    """SIGINT and SIGTERM set the event, whatever disposition or mask the parent left us."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    return stop


class ConsoleReporter:
    """Progress that moves: one line per run of the loop as Dagster's event log reports it, renders n/m."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()

    def _line(self, text: str) -> None:
        console.print(f"[dim]{time.monotonic() - self.started_at:6.1f}s[/] {text}", highlight=False)

    def started(self, running) -> None:
        from connectors.secrets import redact

        for key, value in running.where.items():
            self._line(f"{key:<16} {redact(value)}")

    def run_changed(self, brief: str, step: str, status: str, detail: str) -> None:
        colour = {"SUCCESS": "green", "FAILURE": "red", "STARTED": "cyan"}.get(status, "dim")
        if status in ("SUCCESS", "FAILURE", "STARTED"):
            self._line(f"[bold]{brief}[/] {step}: [{colour}]{status.lower()}[/] {detail}")

    def renders(self, brief: str, done: int, total: int) -> None:
        self._line(f"[bold]{brief}[/] renders {done}/{total}")

    def day(self, today: str) -> None:
        self._line(f"[bold]sandbox day {today}[/]")

    def restarted(self, name: str, why: str, log) -> None:
        self._line(f"[yellow]{name} {why}: started again[/] (its log: {log})")

    def brief_refused(self, error: str) -> None:
        self._line(f"[red]brief left out until its file validates again:[/] {escape(error)}")


def postgres_settings(settings, url: str) -> dict:
    """``--postgres URL``: the Dagster instance in that database and, unless MLFLOW_TRACKING_URI says
    otherwise, MLflow's store in ``<database>_mlflow`` on the same server (made when missing)."""
    from urllib.parse import urlsplit

    from pipelines.settings import POSTGRES_SCHEME, is_postgres, local_artifacts

    parts = urlsplit(url)
    if not is_postgres(url) or not parts.path.strip("/"):
        fail(f"--postgres: expected postgresql://user[:password]@host[:port]/database, got {parts.scheme}://...")
    url = parts._replace(scheme=POSTGRES_SCHEME).geturl()
    changes = {"dagster_postgres_url": url}
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow = parts._replace(scheme=POSTGRES_SCHEME, path=parts.path.rstrip("/") + "_mlflow").geturl()
        changes |= {
            "mlflow_tracking_uri": mlflow,
            "mlflow_artifact_location": local_artifacts(mlflow, settings.home, settings.artifacts),
        }
    return changes


def _settings(
    briefs: Path | None,
    profile: str | None,
    seed: int | None = None,
    executor: str | None = None,
    render_workers: int | None = None,
    postgres: str | None = None,
    artifacts: str | None = None,
):
    if artifacts:  # read as the variable is, so what derives from it (MLflow's artifacts) follows
        os.environ["AUTOPLAY_ARTIFACTS"] = artifacts
    settings = load_settings()
    changes = {}
    if postgres is not None:
        changes |= postgres_settings(settings, postgres)
    if executor is not None:
        changes["executor"] = executor
    if render_workers is not None:
        changes["render_workers"] = render_workers
    if briefs is not None:
        changes["briefs_dir"] = briefs.resolve()
    if profile is not None:
        changes["render_profile"] = profile
    if seed is not None:
        changes["seed"] = seed
    return settings.replace(**changes)


class Executor(enum.StrEnum):
    in_process = "in_process"
    celery = "celery"


class Queue(enum.StrEnum):
    gpu = "gpu"
    default = "default"


def worker(
    queue: Queue = typer.Option(..., help="gpu: render steps; default: every other step"),
    name: str = typer.Option(None, help="the worker's name (default: QUEUE-PID)"),
    concurrency: int = typer.Option(1, min=1, max=64, help="steps at once (per GPU: 1)"),
) -> None:
    """Run one Celery worker for the loop's steps on this machine (AUTOPLAY_CELERY_BROKER, the same
    DAGSTER_HOME, AUTOPLAY_HOME and settings as the deployment), until Ctrl-C or SIGTERM."""
    from pipelines.workers import WorkerError, worker_command

    settings = load_settings()
    try:
        command, extra = worker_command(settings, queue.value, name or f"{queue.value}-{os.getpid()}", concurrency)
    except WorkerError as exc:
        fail(str(exc))
    env = dict(os.environ) | extra
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra["PYTHONPATH"], os.environ.get("PYTHONPATH")]))
    console.print(f"celery worker on queue {queue.value}: {' '.join(command)}")
    os.execve(command[0], command, env)


def up(
    briefs: Path = typer.Option(None, help="folder of briefs, each in its own folder (default AUTOPLAY_BRIEFS)"),
    day_seconds: float = typer.Option(30.0, min=0, help="sandbox: seconds per simulated day (at least)"),
    profile: str = typer.Option(None, help="render profile: thumbnail, preview or production"),
    ui_port: int = typer.Option(3000, help="port of the Dagster UI"),
    ui: bool = typer.Option(True, "--ui/--no-ui", help="start the Dagster webserver"),
    console_port: int = typer.Option(None, help="port of the web console (default AUTOPLAY_CONSOLE_PORT, 8080)"),
    web_console: bool = typer.Option(True, "--console/--no-console", help="serve the web console"),
    executor: Executor = typer.Option(None, help="in_process (default AUTOPLAY_EXECUTOR), or celery: GPU workers"),
    render_workers: int = typer.Option(None, min=1, help="celery: workers on the gpu queue (default 1)"),
    postgres: str = typer.Option(
        None, help="Dagster instance and MLflow's tracking server on PostgreSQL: postgresql://.../db"
    ),
    artifacts: str = typer.Option(None, help="renders in s3://bucket/prefix or a shared folder (AUTOPLAY_ARTIFACTS)"),
) -> None:
    """Start everything on the embedded defaults and keep the loop turning until Ctrl-C or SIGTERM."""
    from pipelines.deployment import DeploymentError, deployment, turn

    stop = _stop_on_signals()
    settings = _settings(briefs, profile, None, executor and executor.value, render_workers, postgres, artifacts)
    reporter = ConsoleReporter()
    try:
        port = (console_port if console_port is not None else settings.console_port) if web_console else None
        with deployment(settings, ui_port=ui_port if ui else None, console_port=port, empty_ok=True) as running:
            reporter.started(running)
            if not running.catalog.briefs:
                where = f" or create one in the console at {running.where['console']}" if port is not None else ""
                console.print(f"no brief yet: add a folder with a brief.yaml to {settings.briefs_dir}{where}")
            console.print("autoplay is up; Ctrl-C stops it")
            turn(running, reporter, stop, day_seconds=day_seconds, bounded=False)
    except DeploymentError as exc:
        fail(str(exc))
    finally:
        skip_teardown()  # everything it started is stopped: exit within the stop budget
    console.print("stopped")


def demo(
    briefs: Path = typer.Option(None, help="folder of briefs (default AUTOPLAY_BRIEFS, examples/)"),
    generations: int = typer.Option(3, min=1, max=20),
    profile: str = typer.Option(None, help="render profile (default AUTOPLAY_RENDER_PROFILE, preview)"),
    seed: int = typer.Option(None, help="seed of the simulated market and the policy (default AUTOPLAY_SEED)"),
    ui: bool = typer.Option(False, "--ui/--no-ui", help="also start the Dagster webserver while it runs"),
    ui_port: int = typer.Option(3000),
    executor: Executor = typer.Option(None, help="in_process (default AUTOPLAY_EXECUTOR), or celery: GPU workers"),
    render_workers: int = typer.Option(None, min=1, help="celery: workers on the gpu queue (default 1)"),
    postgres: str = typer.Option(
        None, help="Dagster instance and MLflow's tracking server on PostgreSQL: postgresql://.../db"
    ),
    artifacts: str = typer.Option(None, help="renders in s3://bucket/prefix or a shared folder (AUTOPLAY_ARTIFACTS)"),
) -> None:
    """A bounded `up`: N generations of every brief through Dagster's automation, then what was learned."""
    from experiments.market import SimulatedMarket
    from pipelines.demo import Interrupted, run_demo
    from pipelines.deployment import DeploymentError

    stop = _stop_on_signals()
    settings = _settings(briefs, profile, seed, executor and executor.value, render_workers, postgres, artifacts)
    started = time.perf_counter()
    try:
        run = run_demo(
            settings,
            generations,
            SimulatedMarket(seed=settings.seed),
            ConsoleReporter(),
            ui_port=ui_port if ui else None,
            stop=stop,
        )
    except Interrupted as exc:
        fail(str(exc), code=130)
    except DeploymentError as exc:
        fail(str(exc), code=1)
    finally:
        skip_teardown()  # everything it started is stopped: exit within the stop budget
    from connectors.secrets import redact
    from pipelines.cli import print_leaderboard

    for result in run.results:
        console.rule(f"{result.brief.brand} / {result.brief.name}")
        print_leaderboard(result.leaderboard, result.brief.goal)
        shares = Table(title="Traffic share of the best live variant (true rates known to the sandbox)")
        for col in ("generation", "best live variant", "true CTR", "impressions", "traffic share"):
            shares.add_column(col, justify="right")
        for r in result.best_share.itertuples():
            shares.add_row(
                str(r.generation), r.variant_id, f"{r.true_rate:.3%}", f"{r.impressions:,.0f}", f"{r.share:.1%}"
            )
        console.print(shares)
        read_back = Table(title="Read back through both channels (Meta insights; Shopify pixel and order webhooks)")
        for col in ("channel", "kind", "count", "value", "joined to Meta ads"):
            read_back.add_column(col, justify="right" if col not in ("channel", "kind") else "left")
        for r in result.read_back.itertuples():
            value = f"{r.value:,.2f}" if r.value == r.value and r.value else "-"
            joined = f"{r.joined_to_ads:,.0f}" if r.channel != "meta" and r.joined_to_ads == r.joined_to_ads else "-"
            read_back.add_row(r.channel, r.kind, f"{r.count:,.0f}", value, joined)
        console.print(read_back)
        for sheet in result.sheets:
            console.print(f"contact sheet:   {sheet}")
    console.print(f"events stored:   {run.event_counts}")
    console.print(f"renders:         {run.renders_dir}")
    if settings.artifacts:  # what every machine shares: the renders, and MLflow's artifacts beside them
        console.print(f"artifact store:  {settings.artifacts}  (renders/, mlflow/)")
    console.print(f"Dagster home:    {run.dagster_home}  (DAGSTER_HOME={run.dagster_home} dagster dev)")
    console.print(f"MLflow store:    {redact(run.mlflow_uri)}")
    console.print(f"finished in {time.perf_counter() - started:.0f} s")


def _ledger(create: bool = False):
    from connectors.event_store import EventStore
    from connectors.ledger import Ledger

    settings = load_settings()
    if not create and not settings.event_store_path.exists():
        fail(f"no ledger at {settings.event_store_path}: nothing has run in AUTOPLAY_HOME={settings.home} yet")
    return settings, Ledger(EventStore(settings.event_store_path))


def _brief_named(ledger, given: str):
    """``--brief``: a brief file, or the name of a brief the ledger knows. Returns (name, Brief or None)."""
    from creative.brief import Brief, BriefError, load_brief

    if Path(given).suffix in (".yaml", ".yml") or Path(given).is_file():
        try:
            brief = load_brief(given)
        except BriefError as exc:
            fail(str(exc))
        return brief.name, brief
    spec = ledger.brief_spec(given)
    if spec is None:
        known = ", ".join(ledger.briefs()["brief"]) or "none"
        fail(f"--brief {given!r}: no such brief in the ledger (briefs: {known})")
    return given, Brief.model_validate(spec)


def pause(
    brief: str = typer.Option(None, "--brief", help="a brief's name, or its file"),
    every: bool = typer.Option(False, "--all", help="every brief (with --brief FILE: reach that brief's account)"),
    reason: str = typer.Option("", help="why, for the audit log"),
) -> None:
    """Pause a brief (or all): nothing activates, publishes or raises a budget until it is resumed.

    Recorded in the ledger first (the loop keeps its ads PAUSED from the next day on), then the ads are paused
    on Meta at once; exit 2 if Meta cannot be reached now."""
    from connectors.ledger import ALL_BRIEFS
    from connectors.meta import MetaError
    from pipelines.channels import NoChannel
    from pipelines.status import pause_brief

    if not brief and not every:
        fail("pause: name one brief with --brief NAME, or every brief with --all")
    settings, ledger = _ledger(create=True)
    named = _brief_named(ledger, brief) if brief else None
    target = ALL_BRIEFS if every else named[0]
    try:
        note = pause_brief(settings, ledger, target, ACTOR_CLI, reason, reach=named[1] if named else None)
    except (NoChannel, MetaError) as exc:
        fail(f"recorded, but the ads could not be paused on Meta now: {exc}")
    console.print(f"{'every brief' if every else named[0]}: paused in the ledger ({settings.event_store_path}); {note}")


def resume(
    brief: str = typer.Option(None, "--brief", help="a brief's name, or its file"),
    every: bool = typer.Option(False, "--all", help="every brief (lifts the switch over all of them)"),
    reason: str = typer.Option("", help="why, for the audit log"),
) -> None:
    """Resume a paused brief (or all): the next day's allocation sets its budgets and statuses again."""
    from connectors.ledger import ALL_BRIEFS

    if bool(brief) == every:
        fail("resume: name one brief with --brief NAME, or every brief with --all")
    _, ledger = _ledger()
    if every:
        for each in [*ledger.briefs()["brief"], ALL_BRIEFS]:
            if ledger.is_paused(each):
                ledger.set_paused(each, False, ACTOR_CLI, reason)
        console.print("every brief: resumed; the next day's run allocates again")
        return
    name, _ = _brief_named(ledger, brief)
    ledger.set_paused(name, False, ACTOR_CLI, reason)
    if ledger.is_paused(name):
        err.print(f"{name}: resumed, but `pause --all` still holds every brief; `resume --all` lifts it")
    console.print(f"{name}: resumed; the next day's run allocates again")


def retry(
    brief: str = typer.Option(None, "--brief", help="a brief's name"),
    every: bool = typer.Option(False, "--all", help="every brief whose last step failed"),
    reason: str = typer.Option("", help="why, for the audit log"),
) -> None:
    """Run a brief's failed step again once its cause is fixed (a failed step waits for a person): the daemon
    of the running `up`, or of the next `up` or `demo`, runs it. Recorded in the audit log."""
    from dagster import DagsterInstance

    from connectors.ledger import Action
    from pipelines.assets import step_label
    from pipelines.retries import retry as retry_step

    if bool(brief) == every:
        fail("retry: name one brief with --brief NAME, or every brief with --all")
    settings, ledger = _ledger()
    names = list(ledger.briefs()["brief"]) if every else [_brief_named(ledger, brief)[0]]
    if not (settings.dagster_home / "dagster.yaml").exists():
        fail(f"no Dagster instance at {settings.dagster_home}: nothing has run there yet")
    retried = 0
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for name in names:
            failed = retry_step(instance, name, f"{ACTOR_CLI}: {reason}" if reason else ACTOR_CLI)
            if failed is None:
                if not every:
                    console.print(f"{name}: nothing to retry (its last run did not fail, or is already marked)")
                continue
            step = step_label(failed.tags)
            ledger.log_action(Action(name, "retry", ACTOR_CLI, reason or f"{step} run again",
                                     {"failed_run": failed.run_id}))  # fmt: skip
            console.print(
                f"{name}: {step} (run {failed.run_id}) marked to run again: the daemon runs it on its next tick"
                " if it is still the brief's next step (a day the loop has gone past stays behind)"
            )
            retried += 1
    if every:
        console.print(f"{retried} failed step(s) marked to run again")


def status(
    brief: str = typer.Option(None, "--brief", help="one brief"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Where each brief stands: paused or not, day, generation, spend against the cap, every ad's status."""
    from pipelines.status import brief_status

    _, ledger = _ledger()
    names = ledger.briefs()["brief"].tolist()
    if brief is not None:
        if brief not in names:
            fail(f"--brief {brief!r}: no such brief in the ledger (briefs: {', '.join(names) or 'none'})")
        names = [brief]
    doc = {"briefs": [brief_status(ledger, n) for n in names]}
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    for b in doc["briefs"]:
        state = "[red]paused[/]" if b["paused"] else "[green]live[/]"
        console.print(
            f"[bold]{b['name']}[/] ({b['brand']}) {state}  day {b['day']}  generation {b['generation']}  "
            f"budget today {b['budget_today']:.2f} of {b['daily_budget_cap']}"
        )
        table = Table()
        for col in ("variant", "channel", "kind", "status", "daily budget"):
            table.add_column(col)
        for a in b["ads"]:
            budget = "-" if a["daily_budget"] is None else f"{a['daily_budget']:.2f}"
            table.add_row(a["variant_id"], a["channel"], a["kind"], str(a["status"]), budget)
        console.print(table)


def audit(
    brief: str = typer.Option(None, "--brief", help="one brief (and the switches over every brief)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Every automatic and manual action, with time, brief, actor and reason."""
    _, ledger = _ledger()
    actions = ledger.actions(brief)
    rows = [
        {
            "at": a.at.isoformat(),
            "brief": a.brief,
            "action": a.action,
            "actor": a.actor,
            "reason": a.reason,
            "details": json.loads(a.details) if a.details else {},
        }
        for a in actions.itertuples()
    ]
    if as_json:
        print(json.dumps({"actions": rows}, indent=2))
        return
    table = Table(title="audit log")
    for col in ("at", "brief", "action", "actor", "reason"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["at"][:19], r["brief"], r["action"], r["actor"], r["reason"])
    console.print(table)


def insights(
    brand: str = typer.Option(None, "--brand", help="one brand's briefs (and the catalog beside them)"),
    brief: str = typer.Option(None, "--brief", help="one brief"),
    goal: str = typer.Option("ctr", help="the metric: ctr, conversion_rate or roas"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    plot: Path = typer.Option(None, help="write the lift chart here (PNG)"),
) -> None:
    """What wins, by factor: each level's lift in the goal against the most-tried level, with a 95% interval,
    per brand and across the catalog, from the partially pooled model over every brief."""
    from creative.brief import Brief
    from experiments import reporting
    from experiments.planning import GOAL_COLUMNS
    from pipelines.stages import variant_evidence

    if goal not in GOAL_COLUMNS:
        fail(f"--goal {goal!r}: choose one of {sorted(GOAL_COLUMNS)}")
    settings, ledger = _ledger()
    from connectors.event_store import EventStore

    store = EventStore(settings.event_store_path)
    recorded = ledger.briefs()
    if brief is not None and brief not in set(recorded["brief"]):
        fail(f"--brief {brief!r}: no such brief in the ledger (briefs: {', '.join(recorded['brief']) or 'none'})")
    if brand is not None and brand not in set(recorded["brand"]):
        brands = ", ".join(sorted(set(recorded["brand"])))
        fail(f"--brand {brand!r}: no brief of that brand in the ledger (brands: {brands})")
    frames = [
        variant_evidence(Brief.model_validate(json.loads(r.spec)), ledger, store, goal) for r in recorded.itertuples()
    ]
    evidence = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    scopes: list[reporting.Scope] = [("catalog", None, None)]
    if brand is not None:
        scopes.append((brand, brand, None))
    if brief is not None:
        scopes.append((brief, recorded.set_index("brief").loc[brief, "brand"], brief))
    if brand is None and brief is None:
        scopes += [(b, b, None) for b in sorted(set(recorded["brand"]))]
    lifts = reporting.pooled_lifts(evidence, scopes)
    if plot is not None and len(lifts):
        reporting.lift_plot(lifts, plot)
    if as_json:
        print(json.dumps({"goal": goal, "lifts": lifts.to_dict("records")}, indent=2))
        return
    for row in lifts.to_dict("records"):
        console.print(reporting.lift_sentence(row), highlight=False)
    if plot is not None:
        console.print(f"chart: {plot}")


def register(app: typer.Typer) -> None:
    for command in (up, demo, worker, pause, resume, retry, status, audit, insights):
        app.command()(command)
    app.command("pause-all")(pause_all)


def pause_all(
    brief: str = typer.Option(None, "--brief", help="a brief file or name whose Meta account to reach"),
    reason: str = typer.Option("", help="why, for the audit log"),
) -> None:
    """The one switch: pause every brief and every ad the loop published (alias of `pause --all`)."""
    pause(brief=brief, every=True, reason=reason)
