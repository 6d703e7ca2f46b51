"""A decision about a variant, the record the decision log keeps so any new policy can be judged offline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from creative.vocabulary import VariantFactors


@dataclass(frozen=True)
class Decision:
    """One choice: plan (``keep``, ``succeed``, ``explore``), ``allocate``, ``retire``, ``promote`` or
    ``keep_champion``, with the probability the policy gave it (or the traffic share it set).

    ``factors`` are a planned variant's; ``details`` anything else the choice carried (a budget, a verdict).
    """

    kind: str
    variant_id: str | None
    factors: VariantFactors | None
    propensity: float
    reason: str = ""
    policy_version: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)

    def logged_details(self) -> dict:
        """What the log keeps beside kind, variant and propensity: the factors, the details and the reason."""
        logged = (self.factors.as_dict() if self.factors else {}) | dict(self.details)
        return logged | ({"reason": self.reason} if self.reason else {})
