"""The cadence: one step per brief at a time, a generation every days_per_generation days served."""

from datetime import date, timedelta

from experiments.cadence import BriefProgress, finished, next_step

DAY = date(2026, 11, 1)


def walk(days_per_generation: int, generations: int, render_fails: bool = False) -> list[tuple[str, int, date]]:
    """Follow next_step as the loop would, advancing the clock when nothing is due."""
    p, today, steps = BriefProgress(), DAY, []
    for _ in range(200):
        step = next_step("b", p, today, days_per_generation, generations)
        if step is None:
            if finished(p, days_per_generation, generations):
                return steps
            today += timedelta(days=1)
            continue
        steps.append((step.kind, step.generation, step.day))
        if step.kind == "open":
            p = BriefProgress(generation=step.generation, renders_pending=("v1", "v2"), last_day=p.last_day)
        elif step.kind == "render":
            p = BriefProgress(p.generation, p.days_in_generation, p.last_day, (), p.closed)
        elif step.kind == "day":
            p = BriefProgress(p.generation, p.days_in_generation + 1, today, (), False)
        elif step.kind == "close":
            p = BriefProgress(p.generation, p.days_in_generation, p.last_day, (), True)
    raise AssertionError("the cadence never finished")


def test_generations_open_on_arrival_then_every_days_per_generation_days():
    steps = walk(days_per_generation=2, generations=2)
    assert [s[0] for s in steps] == ["open", "render", "day", "day", "open", "render", "day", "day", "close"]
    days = [s[2] for s in steps if s[0] == "day"]
    assert days == [DAY + timedelta(days=i) for i in range(4)]  # one day's work per date, none skipped
    assert [s[1] for s in steps if s[0] == "open"] == [0, 1]


def test_a_day_is_done_once_per_date_and_renders_come_before_the_day():
    p = BriefProgress(generation=0, days_in_generation=1, last_day=DAY)
    assert next_step("b", p, DAY, 3) is None
    assert next_step("b", p, DAY + timedelta(days=1), 3).kind == "day"
    pending = BriefProgress(generation=0, days_in_generation=1, last_day=DAY, renders_pending=("v9",))
    step = next_step("b", pending, DAY + timedelta(days=1), 3)
    assert step.kind == "render" and step.variant_ids == ("v9",)


def test_run_keys_name_the_brief_and_the_generation_or_day():
    assert next_step("b", BriefProgress(), DAY, 2).run_key == "b:g0:open"
    p = BriefProgress(generation=3, days_in_generation=0, last_day=DAY)
    assert next_step("b", p, DAY + timedelta(days=1), 2).run_key == "b:day:2026-11-02"
