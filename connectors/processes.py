"""Child processes of a deployment or a render step: ones that die with their parent, and free ports."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys


def free_port() -> int:
    """A TCP port free on loopback now (for a server we start right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """In a child, before exec: ask Linux to stop it when its parent dies, even by SIGKILL, and give it the
    default signal handling whatever its parent left (a blocked mask, SIGINT ignored)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # a parent waiting in sigwait blocks these; the child must not
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop(proc: subprocess.Popen | None, timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not gone within ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
