"""Settings come from the environment (pydantic-settings), with one-machine defaults and errors that name the
variable."""

import subprocess
import sys

import pytest

from pipelines.settings import REPO, SettingsError, load_settings


def test_the_defaults_work_on_one_machine_and_nothing_else_leaks_in():
    settings = load_settings({"HOME": "/elsewhere", "SEED": "9"})  # not ours: ignored
    assert settings.home == REPO / "var" and settings.seed == 0
    assert settings.mlflow_tracking_uri == f"sqlite:///{REPO / 'var' / 'mlflow.db'}"
    assert settings.mlflow_artifact_location == (REPO / "var" / "mlartifacts").as_uri()
    assert settings.kafka_bootstrap_servers is None and settings.max_generations is None


def test_production_values_come_from_the_environment(tmp_path):
    env = {"AUTOPLAY_HOME": str(tmp_path), "AUTOPLAY_MAX_GENERATIONS": "3", "KAFKA_BOOTSTRAP_SERVERS": "",
           "MLFLOW_TRACKING_URI": "http://mlflow:5000", "AUTOPLAY_INGEST_INTERVAL_S": "60"}  # fmt: skip
    settings = load_settings(env)
    assert settings.home == tmp_path and settings.event_store_path == tmp_path / "events.duckdb"
    assert settings.max_generations == 3 and settings.ingest_interval_s == 60.0
    assert settings.kafka_bootstrap_servers is None, "an empty variable is unset"
    assert settings.mlflow_artifact_location is None, "a tracking server decides where artifacts go"
    assert settings.replace(seed=4).seed == 4 and settings.seed == 0


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("AUTOPLAY_INGEST_PORT", "abc", "valid integer"),
        ("AUTOPLAY_INGEST_PORT", "70000", "less than or equal to 65535"),
        ("AUTOPLAY_RENDER_MAX_JOBS", "0", "greater than or equal to 1"),
        ("AUTOPLAY_INGEST_INTERVAL_S", "soon", "valid number"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name, value, message):
    with pytest.raises(SettingsError, match=rf"{name}='{value}': .*{message}"):
        load_settings({name: value})


def test_the_command_line_says_which_variable_is_wrong_and_exits_2():
    script = "from pipelines.cli import main; import sys; sys.argv = ['autoplay', 'status']; main()"
    done = subprocess.run(
        [sys.executable, "-c", script], env={"AUTOPLAY_SEED": "x", "PATH": "/usr/bin"}, capture_output=True, text=True,
        cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2 and "AUTOPLAY_SEED='x'" in done.stderr, done.stderr
