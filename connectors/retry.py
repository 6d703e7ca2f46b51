"""Waiting between attempts: exponential backoff with full jitter, shared by the platform connectors."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


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
