"""Keeping secrets out of logs.

Tokens travel in headers where the platform allows it, but some URLs carry them anyway (Meta's paging
links do). Every secret a connector is given is registered here, and log records are redacted as they
are created, whichever library logs them.
"""

from __future__ import annotations

import logging
import re
import threading

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every log record from now on (values under 8 characters are ignored)."""
    global _installed
    if not value or len(value) < 8:
        return
    with _lock:
        _secrets.add(value)
        if not _installed:
            previous = logging.getLogRecordFactory()

            def factory(*args, **kwargs) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                return redact_record(record)

            logging.setLogRecordFactory(factory)
            _installed = True


_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@")


def redact_uri(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host``, wherever it appears in ``text``."""
    return _URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redact(text: str) -> str:
    """Every registered secret, and the password of every URI, replaced by ***."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return redact_uri(text)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if not _secrets:
        return record
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is logging's problem, not ours
        return record
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    return record
