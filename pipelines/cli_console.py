"""`autoplay console` and `autoplay users`: the web console for growth marketers, and who may sign in."""

from __future__ import annotations

import getpass
import signal
import sys

import typer

from pipelines.cli_common import console, fail

users = typer.Typer(help="Console users: add, list, remove.", no_args_is_help=True)


def _users():
    from connectors.event_store import EventStore
    from connectors.users import UserStore
    from pipelines.settings import load_settings

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return UserStore(EventStore(settings.event_store_path))


@users.command("add")
def add(
    email: str = typer.Argument(..., help="the user's email, her sign-in name"),
    role: str = typer.Option(..., "--role", help="marketer (her brands' briefs) or admin (every brief)"),
    brands: list[str] = typer.Option([], "--brand", help="a brand whose briefs she sees; repeat for several"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
) -> None:
    """Add a user who may sign in to the console. The password is asked for (or read from stdin), never an
    argument: arguments show in `ps` and shell history."""
    from connectors.users import UserError

    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("password: ")
    try:
        user = _users().add(email, role, brands, password)
    except UserError as exc:
        fail(str(exc))
    console.print(f"added {user.email} ({user.role}; brands: {', '.join(user.brands) or 'all'})")


@users.command("list")
def list_users() -> None:
    """Who may sign in, with role and brands."""
    for user in _users().list():
        console.print(f"{user.email}  {user.role}  {', '.join(user.brands) or 'all brands'}")


@users.command("remove")
def remove(email: str = typer.Argument(...)) -> None:
    """Remove a user; her sessions end at once."""
    if not _users().remove(email):
        fail(f"no user {email!r}")
    console.print(f"removed {email}")


def serve_console(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(None, help="port (default AUTOPLAY_CONSOLE_PORT, 8080)"),
) -> None:
    """Serve the web console against this home's ledger and stores (works with or without `autoplay up`)."""
    from connectors.asgi_server import serve_forever
    from pipelines.console import create_app
    from pipelines.settings import load_settings

    settings = load_settings()
    if not settings.event_store_path.exists():
        fail(f"no ledger at {settings.event_store_path}: nothing has run in AUTOPLAY_HOME={settings.home} yet")
    for sig in (signal.SIGINT, signal.SIGTERM):  # uvicorn handles both; undo what a parent may have left
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    port = port or settings.console_port
    console.print(f"console on http://{host}:{port}/ ; Ctrl-C stops it")
    serve_forever(create_app(settings), host, port)


def register(app: typer.Typer) -> None:
    app.command("console")(serve_console)
    app.add_typer(users, name="users")
