"""Event Match Quality estimate (0 to 10) from the customer-information keys an event carries.

Each key (or key group) is given a *match power* ``p``: the chance that this key alone lets Meta
resolve the event to an account. Treating keys as independent chances, the event resolves with
``1 - prod(1 - p)`` and the estimate is ten times that. Powers and their sources: docs/emq.md.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

#: Key group -> (keys that must all be present, match power).
MATCH_POWER: dict[str, tuple[tuple[str, ...], float]] = {
    "em": (("em",), 0.50),
    "ph": (("ph",), 0.40),
    "fbc": (("fbc",), 0.40),
    "fbp": (("fbp",), 0.20),
    # The tracking script's visitor id: the pixel is given the same external_id.
    "external_id": (("external_id",), 0.15),
    "ip_ua": (("client_ip_address", "client_user_agent"), 0.15),
    "name": (("fn", "ln"), 0.10),
    "location": (("ct", "st", "zp"), 0.05),
    "birth_date": (("db",), 0.03),
    "gender": (("ge",), 0.01),
    "country": (("country",), 0.01),
}

#: Events estimated below this raise the low-EMQ alert (seed STORY-012).
LOW_EMQ_THRESHOLD = 6.0


@dataclass(frozen=True)
class EmqEstimate:
    score: float
    #: Key groups that would have raised the score, strongest first (no values, only names).
    missing: tuple[str, ...]

    @property
    def low(self) -> bool:
        return self.score < LOW_EMQ_THRESHOLD


def estimate_emq(present: Collection[str]) -> EmqEstimate:
    """Estimate from the names of the ``user_data`` keys that carry a usable value."""
    keys = set(present)
    unresolved = 1.0
    missing: list[tuple[float, str]] = []
    for group, (needed, power) in MATCH_POWER.items():
        if all(key in keys for key in needed):
            unresolved *= 1 - power
        else:
            missing.append((power, group))
    score = round(10 * (1 - unresolved), 2)
    return EmqEstimate(score, tuple(group for _, group in sorted(missing, reverse=True)))
