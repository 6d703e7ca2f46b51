"""The loop's cadence for one brief: given where it stands and today's date, the next step to take.

A generation opens when a brief appears and then every ``days_per_generation`` days served; planned
variants are rendered before anything is published; a day's work (publish what is rendered, read back,
ingest, review, allocate) happens once per brief per date. A day with nothing published is a normal day.
The Dagster sensor asks this for every brief on every tick, and the clock of ``autoplay up`` asks it
whether every brief is done for the day; nothing else decides the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

StepKind = Literal["open", "render", "day", "close"]


@dataclass(frozen=True)
class BriefProgress:
    """Where a brief's loop stands, as the ledger records it."""

    generation: int | None = None
    days_in_generation: int = 0
    last_day: date | None = None
    renders_pending: tuple[str, ...] = ()
    closed: bool = False  # the current generation's policy is trained


@dataclass(frozen=True)
class Step:
    """One run of the loop for one brief. ``run_key`` makes a repeated tick never do the same step twice."""

    kind: StepKind
    brief: str
    generation: int
    day: date
    variant_ids: tuple[str, ...] = ()

    @property
    def run_key(self) -> str:
        if self.kind == "day":
            return f"{self.brief}:day:{self.day.isoformat()}"
        if self.kind == "render":
            return f"{self.brief}:g{self.generation}:render:{self.variant_ids[0]}..{self.variant_ids[-1]}"
        return f"{self.brief}:g{self.generation}:{self.kind}"


def next_step(
    brief: str, progress: BriefProgress, today: date, days_per_generation: int, max_generations: int | None = None
) -> Step | None:
    """The step due now, or None when the brief is done for ``today`` (or done for good)."""
    p = progress
    if p.generation is None:
        return Step("open", brief, 0, today)
    if p.renders_pending:
        return Step("render", brief, p.generation, today, tuple(p.renders_pending))
    if p.last_day is not None and p.last_day >= today:
        return None
    if p.days_in_generation < days_per_generation:
        return Step("day", brief, p.generation, today)
    if max_generations is not None and p.generation + 1 >= max_generations:
        return None if p.closed else Step("close", brief, p.generation, today)
    return Step("open", brief, p.generation + 1, today)


def finished(progress: BriefProgress, days_per_generation: int, max_generations: int | None) -> bool:
    """Every generation asked for has served its days and been trained on."""
    return (
        max_generations is not None
        and progress.generation is not None
        and progress.generation + 1 >= max_generations
        and progress.days_in_generation >= days_per_generation
        and progress.closed
    )
