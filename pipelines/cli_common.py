"""What every command group of the CLI shares: where it prints, and how it fails."""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # error lines name paths: never wrapped


def fail(message: str, code: int = 2) -> NoReturn:
    """One readable line on stderr and a non-zero exit (2: bad input; 1: a failure while running)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # a [bracket] in it is text, not markup
    raise typer.Exit(code)


#: Set by a long-running command (``up``, ``demo``) once it has stopped and closed all it started.
_skip_teardown = False


def skip_teardown() -> None:
    """Let this process exit without Python's teardown of every loaded module: 1-3 s with Dagster, MLflow
    and SQLAlchemy loaded, out of the 10 s in which a stop signal must end ``up`` or ``demo``. Only the console
    script (``main``) acts on it; a command called in-process exits as usual."""
    global _skip_teardown
    _skip_teardown = True


def exit_process(code: int) -> NoReturn:
    """Exit now if the command asked to skip the teardown, else as usual. Exit handlers (logging's flush,
    temporary folders' cleanup) still run and the console's output is flushed; only module teardown is
    skipped."""
    if not _skip_teardown:
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
