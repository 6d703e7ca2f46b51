"""Waiting, shared by the platform connectors: exponential backoff with full jitter between attempts, and
polling for work a platform finishes in its own time (video encoding, reports, media processing)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential backoff with full jitter. Throttles longer than ``max_wait_s`` are reported, not slept."""

    max_attempts: int = 6
    base_s: float = 1.0
    cap_s: float = 60.0
    max_wait_s: float = 900.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, at_least: float = 0.0) -> float:
        return at_least + self.rng.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


def wait_until(
    read: Callable[[], T],
    settled: Callable[[T], bool],
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None],
    max_poll_s: float | None = None,
) -> T:
    """``read()`` until ``settled(state)`` or ``timeout_s`` has passed, first after ``poll_s``, then twice as
    long each time up to ``max_poll_s`` (quick work is seen quickly, slow work is not polled hard); the last
    state comes back either way, and the caller says what it means (done, failed, or still running)."""
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    while True:
        state = read()
        if settled(state) or time.monotonic() > deadline:
            return state
        sleep(delay)
        delay = min(delay * 2, max_poll_s if max_poll_s is not None else poll_s)
