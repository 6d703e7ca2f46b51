"""A brief's failed step, run again: after the deployment stopped under it, or when a person asks.

A failed step waits for a person: the sensor's run key for it is used, so no tick runs it again, and the other
briefs go on. Two failures are not the step's own and are marked to be run again (``RETRY_TAG`` on the failed
run, saying who or what asked): a run that a stopped or killed deployment left unfinished, and a run that a
person retried with `autoplay retry` once its cause was fixed. The sensor then asks for the same step under a
run key of its own (``attempt_key``, from the failed run's id), which a repeated tick does not repeat either.
Every stage is idempotent (publishing reuses its intents, renders come from the cache), so running the whole
step again is safe.
"""

from __future__ import annotations

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import RUN_KEY_TAG

from pipelines.assets import BRIEF_TAG

RETRY_TAG = "autoplay/retry"


def latest_run(instance: DagsterInstance, brief: str) -> DagsterRun | None:
    """The brief's newest run, of any step."""
    records = instance.get_run_records(RunsFilter(tags={BRIEF_TAG: brief}), limit=1)
    return records[0].dagster_run if records else None


ENDED_UNFINISHED = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


def _marked(run: DagsterRun) -> bool:
    """Marked for itself: the mark names the run, so a re-execution from the Dagster UI, which copies its
    parent's tags, is not taken for marked."""
    return run.tags.get(RETRY_TAG, "").split(" ", 1)[0] == run.run_id


def to_run_again(run: DagsterRun | None) -> bool:
    """A failed (or canceled) run marked to be run again (not one that waits for a person)."""
    return run is not None and run.status in ENDED_UNFINISHED and _marked(run)


def waits_for_a_person(run: DagsterRun | None) -> bool:
    """A failed or canceled run nobody has asked to run again: its step's run key is used."""
    return run is not None and run.status in ENDED_UNFINISHED and not _marked(run)


def why_again(run: DagsterRun) -> str:
    """Who or what asked for the run to be run again."""
    return run.tags.get(RETRY_TAG, "").split(" ", 1)[-1]


def attempt_key(instance: DagsterInstance, brief: str, run_key: str) -> str:
    """The run key for the brief's next step: ``run_key``, or, when the brief's newest run is that step ended
    unfinished and marked to be run again, a key of its own (the same on every tick until that attempt exists).
    A marked run without a run key (launched from the Dagster UI) is taken for the step due."""
    latest = latest_run(instance, brief)
    if not to_run_again(latest):
        return run_key
    used = latest.tags.get(RUN_KEY_TAG)
    if used is not None and used.split(":retry-")[0] != run_key:
        return run_key  # another step's: the brief has moved on
    return f"{run_key}:retry-{latest.run_id[:8]}"


def mark_to_run_again(instance: DagsterInstance, run: DagsterRun, why: str) -> None:
    instance.add_run_tags(run.run_id, {RETRY_TAG: f"{run.run_id} {why}"})


def retry(instance: DagsterInstance, brief: str, who: str) -> DagsterRun | None:
    """Mark the brief's failed (or canceled) step to be run again; returns that run, or None when its newest
    run is not one waiting for a person (nothing to retry)."""
    latest = latest_run(instance, brief)
    if not waits_for_a_person(latest):
        return None
    mark_to_run_again(instance, latest, who)
    return latest
