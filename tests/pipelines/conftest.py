"""Fixtures of the pipeline tests."""

from tests.pipelines.loop_run import loop_run  # noqa: F401  (a session fixture: one loop run for every module)
