"""Console users and their sessions, in the ledger's DuckDB file.

Passwords are hashed with argon2id (argon2-cffi's defaults); a session is a random token whose SHA-256 is
stored, so a copy of the database opens no session. Five failed sign-ins in a row lock the account for
``LOCKOUT_S``; the failure count is kept per account, not per address, so a guesser cannot rotate addresses.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from connectors.event_store import EventStore

SCHEMA = """
create table if not exists users (
    email varchar primary key, role varchar not null, brands json not null, password_hash varchar not null,
    failed_signins integer not null default 0, locked_until timestamptz, created_at timestamptz default now()
);
create table if not exists console_sessions (
    token_sha256 varchar primary key, email varchar not null, csrf varchar not null,
    expires_at timestamptz not null
);
"""

Role = Literal["marketer", "admin"]
ROLES = ("marketer", "admin")
MAX_FAILED = 5
LOCKOUT_S = 15 * 60
SESSION_TTL = timedelta(hours=12)
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASHER = PasswordHasher()
_FAILURES = threading.Lock()
# verified against when the email is unknown, so a wrong email costs the same time as a wrong password
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class UserError(ValueError):
    """A user that cannot be added or signed in; the message says which field and why."""


@dataclass(frozen=True)
class User:
    email: str
    role: Role
    brands: tuple[str, ...]

    def may_see(self, brand: str | None) -> bool:
        """An admin sees every brief; a marketer only her brands'."""
        return self.role == "admin" or (brand is not None and brand in self.brands)


@dataclass(frozen=True)
class Session:
    token: str
    user: User
    csrf: str


class UserStore:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        with store.connect() as con:
            con.execute(SCHEMA)

    def add(self, email: str, role: str, brands: list[str], password: str) -> User:
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise UserError(f"email {email!r} is not an email address")
        if role not in ROLES:
            raise UserError(f"role {role!r}: choose one of {list(ROLES)}")
        if role == "marketer" and not brands:
            raise UserError("a marketer needs at least one --brand")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"password: at least {MIN_PASSWORD} characters")
        with self.store.connect() as con:
            if con.execute("select 1 from users where email = ?", [email]).fetchone():
                raise UserError(f"user {email} exists; remove it first")
            con.execute(
                "insert into users (email, role, brands, password_hash) values (?, ?, ?, ?)",
                [email, role, json.dumps(sorted(set(brands))), _HASHER.hash(password)],
            )
        return User(email, role, tuple(sorted(set(brands))))  # type: ignore[arg-type]

    def remove(self, email: str) -> bool:
        email = email.strip().lower()
        with self.store.connect() as con:
            found = con.execute("select 1 from users where email = ?", [email]).fetchone() is not None
            con.execute("delete from console_sessions where email = ?", [email])
            con.execute("delete from users where email = ?", [email])
        return found

    def list(self) -> list[User]:
        with self.store.connect() as con:
            rows = con.execute("select email, role, brands from users order by email").fetchall()
        return [User(e, r, tuple(json.loads(b))) for e, r, b in rows]

    def sign_in(self, email: str, password: str) -> Session:
        """A new session for the right password; UserError (saying only "wrong email or password", or that the
        account is locked) otherwise."""
        email = email.strip().lower()
        now = datetime.now(UTC)
        with self.store.connect() as con:
            row = con.execute(
                "select role, brands, password_hash, failed_signins, locked_until from users where email = ?", [email]
            ).fetchone()
        if row is None:
            _verify(_DUMMY_HASH, password)
            raise UserError("wrong email or password")
        role, brands, hashed, _, locked_until = row
        if locked_until is not None and locked_until > now:
            raise UserError("too many failed sign-ins: this account is locked for a while; try again later")
        if not _verify(hashed, password):
            # counted in the database, one update at a time (DuckDB refuses two writers of one row at once;
            # another process waits for the file), so guesses made at once all count
            with _FAILURES, self.store.connect() as con:
                (failed,) = con.execute(
                    "update users set failed_signins = failed_signins + 1 where email = ? returning failed_signins",
                    [email],
                ).fetchone()
                if failed >= MAX_FAILED:
                    con.execute(
                        "update users set failed_signins = 0, locked_until = ? where email = ?",
                        [now + timedelta(seconds=LOCKOUT_S), email],
                    )
            raise UserError("wrong email or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with _FAILURES, self.store.connect() as con:
            con.execute("update users set failed_signins = 0, locked_until = null where email = ?", [email])
            con.execute("delete from console_sessions where expires_at < ?", [now])
            con.execute(
                "insert into console_sessions values (?, ?, ?, ?)", [_sha(token), email, csrf, now + SESSION_TTL]
            )
        return Session(token, User(email, role, tuple(json.loads(brands))), csrf)

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self.store.connect() as con:
            row = con.execute(
                """select u.email, u.role, u.brands, s.csrf from console_sessions s join users u using (email)
                   where s.token_sha256 = ? and s.expires_at > ?""",
                [_sha(token), datetime.now(UTC)],
            ).fetchone()
        if row is None:
            return None
        email, role, brands, csrf = row
        return Session(token, User(email, role, tuple(json.loads(brands))), csrf)

    def sign_out(self, token: str) -> None:
        with self.store.connect() as con:
            con.execute("delete from console_sessions where token_sha256 = ?", [_sha(token)])


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
