"""What every command group of the CLI shares: where it prints, and how it fails."""

from __future__ import annotations

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
