"""A failed step waits for a person; one marked to run again (a stop cut it short, or `autoplay retry`) is asked
for again under a run key of its own, once, whatever the number of ticks."""

from __future__ import annotations

import uuid

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import RUN_KEY_TAG

from pipelines.assets import BRIEF_TAG
from pipelines.deployment import Reporter, Running, Watch, follow
from pipelines.retries import RETRY_TAG, attempt_key, retry, to_run_again, waits_for_a_person, why_again

KEY = "one:day:2026-11-03"


def add(
    instance: DagsterInstance, status: DagsterRunStatus, run_key: str | None, brief: str = "one", **tags: str
) -> DagsterRun:
    keyed = {RUN_KEY_TAG: run_key} if run_key else {}
    run = DagsterRun(job_name="autoplay_loop", run_id=str(uuid.uuid4()), status=status,
                     tags={BRIEF_TAG: brief, **keyed, **tags})  # fmt: skip
    instance.add_run(run)
    return run


def test_a_failed_step_waits_for_a_person_until_retried_then_runs_again_under_a_key_of_its_own():
    with DagsterInstance.ephemeral() as instance:
        assert attempt_key(instance, "one", KEY) == KEY  # nothing ran yet
        first = add(instance, DagsterRunStatus.FAILURE, KEY)
        assert waits_for_a_person(instance.get_run_by_id(first.run_id))
        assert attempt_key(instance, "one", KEY) == KEY  # the used key: the sensor's request is skipped
        assert retry(instance, "one", "cli:someone") is not None
        again = attempt_key(instance, "one", KEY)
        assert again == f"{KEY}:retry-{first.run_id[:8]}" and attempt_key(instance, "one", KEY) == again
        assert retry(instance, "one", "cli:someone") is None  # already marked: nothing more to do

        second = add(instance, DagsterRunStatus.FAILURE, again)  # the attempt failed too: a person again
        assert (
            attempt_key(instance, "one", KEY) == KEY and retry(instance, "one", "cli:someone").run_id == second.run_id
        )
        assert attempt_key(instance, "one", KEY) == f"{KEY}:retry-{second.run_id[:8]}"
        assert to_run_again(instance.get_run_by_id(second.run_id))
        assert why_again(instance.get_run_by_id(second.run_id)) == "cli:someone"

        add(instance, DagsterRunStatus.SUCCESS, f"{KEY}:retry-{second.run_id[:8]}")
        assert retry(instance, "one", "cli:someone") is None  # its newest run succeeded


def test_a_retry_is_for_that_step_and_that_brief_only():
    with DagsterInstance.ephemeral() as instance:
        other_step = add(instance, DagsterRunStatus.FAILURE, "one:day:2026-11-02")
        retry(instance, "one", "cli:someone")
        assert to_run_again(instance.get_run_by_id(other_step.run_id))
        assert attempt_key(instance, "one", KEY) == KEY  # the marked failure was another day's step
        add(instance, DagsterRunStatus.FAILURE, "two:day:2026-11-03", brief="two")
        assert retry(instance, "one", "cli:someone") is None  # brief one's newest run is already marked
        assert waits_for_a_person(instance.get_run_records()[0].dagster_run)  # brief two's is left alone


def test_autoplay_retry_marks_the_failed_step_audits_it_and_says_what_it_did(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from connectors.event_store import EventStore
    from connectors.ledger import Ledger
    from creative.brief import load_brief
    from pipelines.cli import app
    from tests.conftest import EXAMPLE_BRIEF, REPO

    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    monkeypatch.setenv("AUTOPLAY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    cli = CliRunner()
    assert cli.invoke(app, ["retry"]).exit_code == 2
    nothing = cli.invoke(app, ["retry", "--brief", "waterbottle-launch"])
    assert nothing.exit_code == 2 and "no ledger at" in nothing.output
    home.mkdir()
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((REPO / "dagster_home" / "dagster.yaml").read_text())
    brief = load_brief(EXAMPLE_BRIEF)
    ledger = Ledger(EventStore(home / "events.duckdb"))
    ledger.record_brief(brief.name, brief.brand, str(EXAMPLE_BRIEF), brief.model_dump(mode="json"))
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        failed = add(instance, DagsterRunStatus.FAILURE, KEY, brief=brief.name)
    unknown = cli.invoke(app, ["retry", "--brief", "nope"])
    assert unknown.exit_code == 2 and "'nope'" in unknown.output and brief.name in unknown.output
    done = cli.invoke(app, ["retry", "--brief", brief.name, "--reason", "disk freed"])
    assert done.exit_code == 0 and failed.run_id in done.output and "marked to run again" in done.output, done.output
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert attempt_key(instance, brief.name, KEY) == f"{KEY}:retry-{failed.run_id[:8]}"
    [action] = ledger.actions(brief.name).query("action == 'retry'").itertuples()
    assert action.reason == "disk freed" and action.actor.startswith("cli:")
    again = cli.invoke(app, ["retry", "--brief", brief.name])
    assert again.exit_code == 0 and "nothing to retry" in again.output


def test_a_ui_re_execution_copying_the_mark_a_cancel_and_a_run_without_a_key():
    with DagsterInstance.ephemeral() as instance:
        marked = add(instance, DagsterRunStatus.FAILURE, KEY)
        retry(instance, "one", "cli:someone")
        # the Dagster UI's re-execution copies its parent's tags, the mark among them: it fails for its own reason
        copy = add(
            instance,
            DagsterRunStatus.FAILURE,
            None,
            **{RETRY_TAG: instance.get_run_by_id(marked.run_id).tags[RETRY_TAG]},
        )
        assert waits_for_a_person(instance.get_run_by_id(copy.run_id)) and attempt_key(instance, "one", KEY) == KEY
        retry(instance, "one", "cli:someone")  # marked for itself now; it has no run key: the step due is asked
        assert attempt_key(instance, "one", KEY) == f"{KEY}:retry-{copy.run_id[:8]}"
        canceled = add(instance, DagsterRunStatus.CANCELED, KEY)  # a person's Terminate: theirs to retry
        assert waits_for_a_person(instance.get_run_by_id(canceled.run_id))
        assert retry(instance, "one", "cli:someone").run_id == canceled.run_id


class Seen(Reporter):
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []

    def run_changed(self, brief: str, step: str, status: str, detail: str) -> None:
        self.lines.append((brief, status, detail))


def test_demo_stops_only_on_a_failure_that_is_its_briefs_newest_run_and_waits_for_a_person():
    with DagsterInstance.ephemeral() as instance:
        add(instance, DagsterRunStatus.FAILURE, "one:day:2026-11-02")  # a day `up` left behind
        add(instance, DagsterRunStatus.SUCCESS, "one:day:2026-11-03")
        add(instance, DagsterRunStatus.FAILURE, "two:g0:render", brief="two")
        retry(instance, "two", "cli:someone")
        watch, seen = Watch(), Seen()
        follow(Running(None, None, instance, None, None), watch, seen)
        assert watch.failures == []  # nothing to stop on: one went on, two's failure runs again
        assert {detail.rsplit("(", 1)[-1] for _, status, detail in seen.lines if status == "FAILURE"} == {
            "left behind)", "to be run again: cli:someone)"}  # fmt: skip
        failed = add(instance, DagsterRunStatus.FAILURE, "one:day:2026-11-04")
        follow(Running(None, None, instance, None, None), watch, seen)
        [failure] = watch.failures
        assert failed.run_id in failure and "autoplay retry --brief one" in failure
