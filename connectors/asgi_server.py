"""An ASGI app on uvicorn in a background thread, for `autoplay up` and the tests: the ingest endpoint and
the console both run this way; ``stop`` returns within seconds."""

from __future__ import annotations

import threading
import time

import uvicorn


def server_config(app, host: str, port: int) -> uvicorn.Config:
    """Sized for bursts (a deep listen backlog), quick to stop (5 s of grace), our own access log only."""
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, backlog=4096,
                          timeout_keep_alive=5, timeout_graceful_shutdown=5, lifespan="off")  # fmt: skip


class BackgroundServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, name: str = "asgi-server") -> None:
        self.app = app
        self.name = name
        self._server = uvicorn.Server(server_config(app, host, port))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout_s: float = 10.0):
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the {self.name} did not start (is its port taken?)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_forever(app, host: str, port: int) -> None:
    """In the foreground; uvicorn stops on SIGINT or SIGTERM within seconds."""
    uvicorn.Server(server_config(app, host, port)).run()
