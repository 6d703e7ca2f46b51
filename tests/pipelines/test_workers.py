"""The production configurations: Celery workers' settings, the Postgres instance and the Kubernetes
deployment, validated against Dagster's own config schemas (Kubernetes is not run here)."""

import os
from pathlib import Path

import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config

from pipelines import workers
from pipelines.settings import REPO, load_settings

PRODUCTION = REPO / "dagster_home" / "production"


def test_the_k8s_executor_config_is_valid_and_gives_the_render_step_a_gpu_and_only_it(monkeypatch):
    from dagster_k8s import k8s_job_executor
    from dagster_k8s.job import USER_DEFINED_K8S_JOB_CONFIG_SCHEMA

    settings = load_settings({"AUTOPLAY_EXECUTOR": "k8s"})
    executor = workers.executor(settings)
    config = workers.k8s_config(settings)
    result = validate_config(k8s_job_executor.config_schema.config_type, config)
    assert result.success, [e.message for e in result.errors]
    assert executor.name == "k8s"
    steps = config["per_step_k8s_config"]
    assert steps["renders"]["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert validate_config(USER_DEFINED_K8S_JOB_CONFIG_SCHEMA, steps["renders"]).success
    assert "nvidia.com/gpu" not in str(config["step_k8s_config"])  # other steps run on CPU nodes


def test_the_production_instances_validate_against_dagsters_schema(tmp_path, monkeypatch):
    from dagster_k8s import K8sRunLauncher

    monkeypatch.setenv("AUTOPLAY_DAGSTER_POSTGRES_URL", "postgresql://autoplay@db.internal:5432/dagster")
    for folder in (PRODUCTION, PRODUCTION / "k8s"):
        config, _ = dagster_instance_config(str(folder))  # raises, naming the key, on any schema error
        assert config["storage"]["postgres"]["postgres_url"] == {"env": "AUTOPLAY_DAGSTER_POSTGRES_URL"}
    launcher = yaml.safe_load((PRODUCTION / "k8s" / "dagster.yaml").read_text())["run_launcher"]
    assert validate_config(K8sRunLauncher.config_type(), launcher["config"]).success


def test_a_broken_k8s_or_celery_setting_is_refused_naming_it(tmp_path):
    bad = tmp_path / "executor.yaml"
    bad.write_text("- not a mapping\n")
    with pytest.raises(workers.WorkerError, match=rf"AUTOPLAY_K8S_EXECUTOR_CONFIG={bad}: not a mapping"):
        workers.executor(load_settings({"AUTOPLAY_EXECUTOR": "k8s", "AUTOPLAY_K8S_EXECUTOR_CONFIG": str(bad)}))
    with pytest.raises(workers.WorkerError, match="AUTOPLAY_EXECUTOR=celery needs AUTOPLAY_CELERY_BROKER"):
        workers.executor(load_settings({"AUTOPLAY_EXECUTOR": "celery"}))
    with pytest.raises(workers.WorkerError, match="unknown queue 'cpu'"):
        workers.worker_command(load_settings({"AUTOPLAY_CELERY_BROKER": "redis://x:1/0"}), "cpu", "w")


def test_a_worker_is_started_with_the_brokers_and_queues_the_executor_uses(tmp_path):
    settings = load_settings({"AUTOPLAY_HOME": str(tmp_path), "AUTOPLAY_CELERY_BROKER": "redis://10.0.0.5:6379/0",
                              "AUTOPLAY_WORKER_MAX_TASKS": "7"})  # fmt: skip
    command, env = workers.worker_command(settings, "gpu", "gpu-7", concurrency=2)
    assert command[command.index("-Q") + 1] == "gpu" and command[command.index("--concurrency") + 1] == "2"
    assert command[command.index("--max-tasks-per-child") + 1] == "7"  # its step process recycled after 7 steps
    assert env["AUTOPLAY_WORKER_NAME"] == "gpu-7"
    module = Path(env["PYTHONPATH"]) / "dagster_celery_config.py"
    namespace: dict = {}
    exec(module.read_text(), namespace)  # what dagster-celery's app reads on the worker
    executor_config = workers.celery_config(settings)
    assert namespace["broker_url"] == executor_config["broker"] == "redis://10.0.0.5:6379/0"
    assert namespace["task_default_queue"] == "default" and namespace["task_acks_late"] is True


def test_what_a_deployment_killed_with_sigkill_left_running_is_stopped_by_the_next_one_on_its_home(tmp_path):
    """Dagster's compute-log tails outlive a SIGKILLed deployment (they are not our children); the lock names
    the dead deployment, and the next `up` on that home stops them before it starts."""
    import subprocess

    from pipelines.deployment import DEPLOYMENT_VAR, home_lock

    settings = load_settings({"AUTOPLAY_HOME": str(tmp_path)})
    orphan = subprocess.Popen(["sleep", "300"], env={DEPLOYMENT_VAR: "4242-deadbeef", "PATH": "/usr/bin:/bin"})
    settings.lock_path.write_text("4242 4242-deadbeef")  # what a SIGKILL leaves: the lock never cleared
    try:
        with home_lock(settings, "777-new"):
            assert orphan.wait(timeout=10) is not None
            assert settings.lock_path.read_text() == f"{os.getpid()} 777-new"
        assert settings.lock_path.read_text() == ""  # a clean stop clears it
    finally:
        orphan.kill()
