"""A small threaded HTTP server: the base of the sandbox platforms and of the ingest endpoint."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Request:
    """The parts of an HTTP request a sandbox route needs."""

    def __init__(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        self.method = method
        self.path = url.path
        self.headers = handler.headers
        self.params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""
        ctype = handler.headers.get("Content-Type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            self.params.update({k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()})
        self.files: dict[str, tuple[str, bytes]] = {}
        if ctype.startswith("multipart/form-data"):
            self._parse_multipart(ctype)
        self.json = None
        if ctype.startswith("application/json") and self.body:
            try:
                self.json = json.loads(self.body)
            except ValueError:
                pass  # routes that need JSON say so; the raw body stays in ``body``

    def _parse_multipart(self, ctype: str) -> None:
        """Form fields go to ``params``, file parts to ``files`` as (filename, bytes), byte for byte."""
        boundary = ctype.partition("boundary=")[2].split(";")[0].strip().strip('"').encode()
        for part in self.body.split(b"--" + boundary)[1:]:
            if part.startswith(b"--"):
                break
            head, _, payload = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            payload = payload.removesuffix(b"\r\n")
            disposition = next(
                (
                    line
                    for line in head.decode(errors="replace").split("\r\n")
                    if line.lower().startswith("content-disposition")
                ),
                "",
            )
            name = re.search(r'\bname="([^"]*)"', disposition)
            filename = re.search(r'\bfilename="([^"]*)"', disposition)
            if name is None:
                continue
            if filename is not None:
                self.files[name.group(1)] = (filename.group(1), payload)
            else:
                self.params[name.group(1)] = payload.decode()


class HttpServer:
    """Serve ``handle(request) -> (status, headers, body)`` on 127.0.0.1 in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # the headers and the body go out in two writes: with Nagle's algorithm the body waits for the
            # client's delayed ACK of the headers (40 ms a request on a kept-alive connection)
            disable_nagle_algorithm = True

            def _serve(self, method: str) -> None:
                try:
                    status, headers, body = owner.handle(Request(self, method))
                except Exception as exc:  # a bug in a route answers 500 instead of dropping the connection
                    message = f"{type(exc).__name__}: {exc}"
                    status, headers, body = 500, {}, {"error": {"message": message, "type": "ServerError", "code": 1}}
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test, a killed process)

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._serve("DELETE")

            def do_OPTIONS(self) -> None:  # noqa: N802
                self._serve("OPTIONS")

            def log_message(self, *args) -> None:  # keep request lines (with tokens) out of logs
                pass

        self.lock = threading.RLock()
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def handle(self, request: Request) -> tuple[int, dict, object]:
        raise NotImplementedError

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
