"""Render steps on GPU workers: Dagster's Celery executor (dagster-celery), Redis as the broker.

With ``AUTOPLAY_EXECUTOR=celery`` every step of a run is a Celery task: the ``renders`` step goes to the
``gpu`` queue, every other step to the ``default`` queue. A worker is ``celery -A dagster_celery.app
worker`` listening on one queue, started by ``autoplay up --executor celery`` on this machine or by
``autoplay worker --queue gpu`` on another one that shares the Dagster instance, the home folder and the
settings. On one machine without ``AUTOPLAY_CELERY_BROKER``, ``up`` starts Debian's ``redis-server`` on
a free loopback port for the deployment's lifetime.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from connectors.processes import die_with_parent, free_port, stop
from pipelines.settings import Settings
from rendering.worker import QUEUE_WORKER_VAR

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"
QUEUES = (GPU_QUEUE, DEFAULT_QUEUE)
QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG, without importing celery
BIN = Path(sys.executable).parent


class WorkerError(RuntimeError):
    """A worker or the broker could not start; the message says what is missing."""


def celery_config(settings: Settings) -> dict:
    """The executor's config: the same broker, backend and queues every worker is started with."""
    broker = settings.celery_broker
    if not broker:
        raise WorkerError("AUTOPLAY_EXECUTOR=celery needs AUTOPLAY_CELERY_BROKER (autoplay up starts Redis)")
    return {
        "broker": broker,
        "backend": settings.celery_backend or broker,
        # a step killed with its worker is delivered again to another worker (acks_late), once
        "config_source": {
            "task_default_queue": DEFAULT_QUEUE,
            "worker_prefetch_multiplier": 1,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "broker_transport_options": {"visibility_timeout": settings.celery_visibility_timeout_s},
        },
    }


def executor(settings: Settings):
    """The executor of the loop's jobs: in-process on the embedded default; Celery workers; or on
    Kubernetes, a pod per step (the render step's on a GPU node, ``dagster_home/production/k8s``)."""
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(settings), name="celery")
    if settings.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(k8s_config(settings), name="k8s")
    from dagster import in_process_executor

    return in_process_executor


def k8s_config(settings: Settings) -> dict:
    """The k8s executor's config from its file; a missing or malformed file names itself."""
    import yaml

    path = settings.k8s_executor_config
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise WorkerError(f"AUTOPLAY_K8S_EXECUTOR_CONFIG={path}: {exc}") from None
    if not isinstance(config, dict):
        raise WorkerError(f"AUTOPLAY_K8S_EXECUTOR_CONFIG={path}: not a mapping of the k8s executor's config")
    return config


def write_worker_config(settings: Settings) -> Path:
    """The ``dagster_celery_config`` module a worker imports (dagster-celery reads its broker from it);
    returns the folder to put on its PYTHONPATH."""
    config = celery_config(settings)
    folder = settings.home / "celery"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"broker_url = {config['broker']!r}", f"result_backend = {config['backend']!r}"]
    lines += [f"{k} = {v!r}" for k, v in config["config_source"].items()]
    (folder / "dagster_celery_config.py").write_text("\n".join(lines) + "\n")
    return folder


def worker_command(settings: Settings, queue: str, name: str, concurrency: int = 1) -> tuple[list[str], dict]:
    """The command and the environment additions of one Celery worker on ``queue``."""
    if queue not in QUEUES:
        raise WorkerError(f"unknown queue {queue!r}; choose one of {', '.join(QUEUES)}")
    folder = write_worker_config(settings)
    command = [
        str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "-Q", queue, "-n", f"{name}@%h",
        "--concurrency", str(concurrency), "--prefetch-multiplier=1", "--loglevel", "INFO",
        "--max-tasks-per-child", str(settings.worker_max_tasks),
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return command, {"PYTHONPATH": str(folder), QUEUE_WORKER_VAR: name}


class RedisServer:
    """Debian's redis-server on a free loopback port, in memory only, for one deployment's lifetime."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise WorkerError(
                "the celery executor needs a broker: install redis-server (apt-get install redis-server) "
                "or set AUTOPLAY_CELERY_BROKER to a Redis or RabbitMQ URL"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(  # gone with us even after a SIGKILL
            [*args, "--dir", str(self.folder)], stdout=log, stderr=log, preexec_fn=die_with_parent
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        self.url = f"redis://127.0.0.1:{port}/0"
                        return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise WorkerError(f"redis-server did not answer on port {port}; see {self.folder / 'redis.log'}")

    def __exit__(self, *exc) -> None:
        stop(self.proc, 5)
