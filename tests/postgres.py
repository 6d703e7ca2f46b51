"""A real PostgreSQL server for the tests, from Debian's packages (``run.sh test`` installs them when missing):
a fresh cluster in a temporary folder on a free loopback port, stopped and removed afterwards."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from connectors.processes import free_port, stop


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql")
    return found[-1]


class PostgresServer:
    """``url(database)`` gives a connection URL; ``create(database)`` makes a database."""

    def __init__(self) -> None:
        # its own folder under /tmp: pytest's are private to root, and the server runs as postgres
        self.folder, self.port, self.proc = Path(tempfile.mkdtemp(prefix="autoplay-pg-")), free_port(), None
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _as_owner(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        """initdb and postgres refuse to run as root: as root, run them as the postgres user."""
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(prefix + args, check=True, capture_output=True, text=True, **kw)

    def __enter__(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        self._as_owner([_bin("initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8"])
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        args = [_bin("postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.folder),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]  # fmt: skip
        log = open(self.folder / "postgres.log", "ab")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(prefix + args, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:  # fmt: skip
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL did not start; see {self.folder / 'postgres.log'}")
            time.sleep(0.2)
        return self

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{database}"  # the driver Dagster needs

    def create(self, database: str) -> str:
        subprocess.run([_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, database],
                       check=True, capture_output=True)  # fmt: skip
        return self.url(database)

    def __exit__(self, *exc) -> None:
        stop(self.proc, 15)
        shutil.rmtree(self.folder, ignore_errors=True)
