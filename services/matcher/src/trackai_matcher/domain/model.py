"""What the matcher reasons about: browser sessions (clicks), purchases, and match decisions.

Pure data, no I/O. Hashed personal data only: e-mail and phone arrive as SHA-256 hex digests.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Stage(StrEnum):
    """The stage that linked a conversion to a click (the `matches.stage` column)."""

    DETERMINISTIC = "deterministic"
    SEMI = "semi"
    PROBABILISTIC = "probabilistic"
    NONE = "none"


class HitKind(StrEnum):
    PAGE_VIEW = "page_view"
    LEAD = "lead"
    INITIATE_CHECKOUT = "initiate_checkout"


@dataclass(frozen=True)
class Tracking:
    """Click identifiers and campaign tags carried by a hit or a purchase (empty = absent)."""

    src: str = ""
    sck: str = ""
    utm: Mapping[str, str] = field(default_factory=dict)
    fbclid: str = ""
    fbc: str = ""
    fbp: str = ""
    #: Gateway pass-through fields (Hotmart ``xcod``, Kiwify ``s1``..``s3``...), by name.
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def campaign(self) -> str:
        return self.utm.get("utm_campaign", "")

    def fbclid_or_from_fbc(self) -> str:
        """The raw fbclid, or the one embedded in ``fbc`` (``fb.<i>.<ms>.<fbclid>[.appendix]``)."""
        if self.fbclid:
            return self.fbclid
        parts = self.fbc.split(".")
        return parts[3] if len(parts) >= 4 and parts[0] == "fb" else ""


@dataclass(frozen=True)
class Hit:
    """One browser hit: folded into its session (``clicks``) and, for forms, ``identities``."""

    tenant_id: str
    session_id: str
    kind: HitKind
    seen_at: dt.datetime
    page_url: str
    referrer: str
    tracking: Tracking
    client_ip: str | None
    user_agent: str
    email_hash: str | None
    phone_hash: str | None
    external_id: str | None
    funnel_id: str | None


#: Precision of gateway purchase times plus clock skew (see ``Purchase.candidates_as_of``).
PURCHASE_TIME_TOLERANCE = dt.timedelta(minutes=2)
#: The tracking script's session ids: "ta" and 20 random letters or digits (tracking script,
#: ``token(20)``). The script puts one on every checkout link (``sck``, and ``src`` when free).
SCRIPT_SESSION_ID = re.compile(r"^ta[A-Za-z0-9]{20}$")


@dataclass(frozen=True)
class Purchase:
    """One conversion message (any status of an order), as the matcher uses it."""

    tenant_id: str
    gateway: str
    order_id: str
    conversion_id: str | None
    #: Canonical status: ``approved``, ``pending_payment``, ``refunded``, ...
    status: str
    #: ``pix``, ``boleto``, ``credit_card``, ... or empty.
    payment_method: str
    event_time: dt.datetime
    amount: str
    currency: str
    product_id: str
    funnel_id: str | None
    tracking: Tracking
    client_ip: str | None
    user_agent: str
    #: Meta key -> SHA-256 hex (``em``, ``ph``, ``fn``, ``ln``, ``ct``, ``st``, ``zp``,
    #: ``country``, ``db``, ``ge``, ``external_id``), only the keys present.
    hashed: Mapping[str, str]
    #: When ingestion received the webhook (the purchase cannot be later than that).
    received_at: dt.datetime | None = None
    #: An automatic subscription charge after the first: Meta ``system_generated``.
    renewal: bool = False
    #: The checkout page the gateway names ("" when none).
    checkout_url: str = ""

    def candidates_as_of(self, at: dt.datetime) -> dt.datetime:
        """Latest session start a match may use for a purchase at ``at``.

        Gateways report purchase times to the minute (Kiwify, Perfect Pay: ``YYYY-MM-DD HH:mm``)
        and their clocks drift, so a session started in the same minute would otherwise look
        "later" than the purchase it produced. The tolerance never reaches past the moment the
        webhook arrived, and never lets a session begun after that steal the purchase.
        """
        as_of = at + PURCHASE_TIME_TOLERANCE
        if self.received_at is not None:
            as_of = min(as_of, max(at, self.received_at))
        return as_of

    @property
    def email_hash(self) -> str | None:
        return self.hashed.get("em")

    @property
    def phone_hash(self) -> str | None:
        return self.hashed.get("ph")

    def session_carriers(self) -> list[tuple[str, str]]:
        """(carrier name, value) pairs that may hold our session id, strongest first."""
        t = self.tracking
        pairs = [("sck", t.sck), ("src", t.src)]
        pairs += sorted(t.extra.items())
        pairs += [(key, t.utm.get(key, "")) for key in ("utm_content", "utm_term", "utm_id")]
        seen: set[str] = set()
        carriers = []
        for name, raw in pairs:
            value = raw.strip()
            # Our ids are long random tokens; short values are campaign tags, not sessions.
            if 8 <= len(value) <= 128 and value not in seen:
                seen.add(value)
                carriers.append((name, value))
        return carriers

    def script_sessions(self) -> list[str]:
        """Carried values shaped like the session ids our tracking script makes: a purchase
        naming one was, almost surely, decorated by the script on a visit we were sent."""
        return [value for _, value in self.session_carriers() if SCRIPT_SESSION_ID.match(value)]


@dataclass(frozen=True)
class Click:
    """A stored browser session (a row of ``clicks``)."""

    id: int
    session_id: str
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    fbclid: str | None
    fbc: str | None
    fbp: str | None
    client_ip: str | None
    ip_network: str | None
    user_agent: str | None
    browser_family: str | None
    os_family: str | None
    device_type: str | None
    landing_url: str | None
    #: The session's ``utm_campaign`` ("" when none): the only UTM value matching compares.
    campaign: str
    funnel_id: str | None
    #: The tracking script's stable visitor id, the pixel's ``external_id`` (64 lowercase hex).
    visitor_id: str | None = None


@dataclass(frozen=True)
class Evidence:
    """One compared feature: its outcome and its contribution to the score."""

    feature: str
    outcome: str
    weight: float
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "outcome": self.outcome,
            "weight": round(self.weight, 4),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Candidate:
    """A session considered for a purchase, with its score (bits) and the evidence behind it."""

    click: Click
    score: float
    evidence: tuple[Evidence, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "click_id": self.click.id,
            "session_id": self.click.session_id,
            "score": round(self.score, 4),
            "seen_time": self.click.last_seen_at.isoformat(),
            "evidence": [e.as_json() for e in self.evidence],
        }


@dataclass(frozen=True)
class MatchDecision:
    """The outcome of the three stages for one order."""

    stage: Stage
    method: str | None
    matched: Candidate | None
    runner_up: Candidate | None = None
    #: Acceptance threshold of the probabilistic stage when the decision was made (bits).
    threshold: float | None = None
    #: Extra facts for "explain a match" (posterior, window, sessions in window, ...).
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def click(self) -> Click | None:
        return self.matched.click if self.matched is not None else None

    @property
    def score(self) -> float | None:
        return self.matched.score if self.matched is not None else None

    @property
    def runner_up_score(self) -> float | None:
        return self.runner_up.score if self.runner_up is not None else None

    def evidence_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"method": self.method, **self.facts}
        if self.matched is not None:
            doc["matched"] = self.matched.as_json()
        if self.runner_up is not None:
            doc["runner_up"] = self.runner_up.as_json()
        if self.threshold is not None:
            doc["threshold"] = self.threshold
        return doc


NO_MATCH = MatchDecision(stage=Stage.NONE, method=None, matched=None)


def as_values(items: Sequence[str | None]) -> list[str]:
    """Non-empty values, first occurrence kept, order preserved."""
    return list(dict.fromkeys(v for v in items if v))
