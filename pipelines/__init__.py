"""Dagster wiring and the CLI: assets, resources, schedules and sensors over the other three packages."""
