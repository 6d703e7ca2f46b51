"""A real S3-compatible server for the tests: moto's server mode (PyPI ``moto[server]``), a separate process on a
free loopback port speaking the S3 REST protocol over HTTP. boto3 (ours, MLflow's, the workers') reaches it through
the standard ``AWS_ENDPOINT_URL_S3`` variable; the credentials are moto's, not secrets."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from connectors.processes import free_port, stop

BIN = Path(sys.executable).parent


class S3Server:
    def __init__(self, log_path: Path) -> None:
        self.log_path, self.port, self.proc = log_path, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to use this server as its S3."""
        return {"AWS_ENDPOINT_URL_S3": self.url, "MLFLOW_S3_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "moto",
                "AWS_SECRET_ACCESS_KEY": "moto", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip

    def __enter__(self) -> S3Server:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=log, stderr=log)  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"moto_server did not start; see {self.log_path}") from None
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        stop(self.proc, 5)
