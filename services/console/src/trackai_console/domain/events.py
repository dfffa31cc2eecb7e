"""What the events page shows about one conversion, assembled from the owners' read APIs:
the normalised sale (ingestion), its match (matcher) and its delivery (dispatcher), and the one
status a seller reads, in Brazilian Portuguese. Pure logic, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from trackai_console.domain.wizard import GATEWAY_NAMES

#: The console's statuses, in the order a sale moves through them, with their pt-BR labels.
STATUS_LABELS: Mapping[str, str] = {
    "received": "Recebido",
    "pending_payment": "Aguardando pagamento",
    "matched": "Atribuído",
    "sent": "Enviado à Meta",
    "failed": "Falhou (nova tentativa)",
    "dead": "Na fila de falhas",
    "expired": "Expirado (mais de 7 dias)",
    "ignored": "Ignorado",
}
STAGE_LABELS: Mapping[str, str] = {
    "deterministic": "Determinístico",
    "semi_deterministic": "Semideterminístico",
    "probabilistic": "Probabilístico",
    "none": "Sem clique",
}
#: The console statuses the dispatcher's delivery states decide, with those states
#: (see ``console_status``): a matched sale the dispatcher holds is "pending" there.
DELIVERY_STATES: Mapping[str, tuple[str, ...]] = {
    "matched": ("pending",),
    "sent": ("sent",),
    "failed": ("retrying", "parked"),
    "dead": ("dead",),
    "expired": ("expired",),
}
#: Console statuses only a sale without a match has (``console_status``): a matched sale reads
#: "matched" or its delivery's status.
UNMATCHED_STATUSES = frozenset({"received", "pending_payment"})
#: Gateway statuses the pipeline does not send to Meta (no Purchase, no pending event).
IGNORED_CONVERSION_STATUSES = frozenset(
    {
        "refused",
        "refunded",
        "chargeback",
        "canceled",
        "abandoned",
        "completed",
        "expired",
        "disputed",
    }
)
PAYMENT_LABELS: Mapping[str, str] = {
    "credit_card": "Cartão de crédito",
    "debit_card": "Cartão de débito",
    "pix": "Pix",
    "boleto": "Boleto",
    "paypal": "PayPal",
    "other": "Outro",
    "unspecified": "—",
}
OUTCOME_LABELS: Mapping[str, str] = {
    "succeeded": "Aceito pela Meta",
    "retryable": "Erro temporário (nova tentativa)",
    "permanent": "Recusado pela Meta",
    "invalid": "Inválido (não enviado)",
    "breaker_open": "Pausado (Meta instável)",
    "timeout": "Sem resposta (nova tentativa)",
}
PERIODS: Mapping[str, str] = {
    "hoje": "Hoje",
    "7d": "Últimos 7 dias",
    "30d": "Últimos 30 dias",
    "tudo": "Tudo",
}
HASHED_KEYS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "external_id")


@dataclass(frozen=True)
class Conversion:
    """A normalised sale as ingestion stored it (personal data only as SHA-256 hashes)."""

    id: str
    order_id: str
    gateway: str
    status: str
    gateway_status: str
    event_time: datetime
    received_time: datetime
    amount: str
    currency: str
    product_name: str
    payment_method: str
    funnel_id: str
    hashes: Mapping[str, str] = field(default_factory=dict)
    tracking: Mapping[str, str] = field(default_factory=dict)
    has_client_ip: bool = False
    has_user_agent: bool = False

    @property
    def amount_cents(self) -> int | None:
        try:
            return int(Decimal(self.amount) * 100)
        except (InvalidOperation, ValueError):
            return None


@dataclass(frozen=True)
class Match:
    event_id: str
    event_name: str
    stage: str
    score: float
    emq: float
    runner_up_margin: float


@dataclass(frozen=True)
class Evidence:
    feature: str
    outcome: str
    weight: float
    detail: str


@dataclass(frozen=True)
class Candidate:
    session_id: str
    score: float
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True)
class Explanation:
    match: Match
    matched: Candidate | None
    runner_up: Candidate | None
    threshold: float
    match_time: datetime | None


@dataclass(frozen=True)
class Delivery:
    state: str  # pending, sent, retrying, parked, dead, expired
    attempts: int
    reason: str


@dataclass(frozen=True)
class Attempt:
    number: int
    outcome: str
    http_status: int
    meta_code: int
    meta_subcode: int
    fbtrace_id: str
    detail: str
    time: datetime
    latency_ms: int


@dataclass(frozen=True)
class EventRow:
    conversion: Conversion
    match: Match | None = None
    delivery: Delivery | None = None

    @property
    def status(self) -> str:
        return console_status(self.conversion, self.match, self.delivery)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


def console_status(conversion: Conversion, match: Match | None, delivery: Delivery | None) -> str:
    """The one status a seller reads: the furthest step the sale reached."""
    if delivery is not None:
        return {
            "sent": "sent",
            "dead": "dead",
            "expired": "expired",
            "retrying": "failed",
            "parked": "failed",
        }.get(delivery.state, "matched")
    if conversion.status in IGNORED_CONVERSION_STATUSES:
        return "ignored"
    if match is not None:
        return "matched"
    if conversion.status == "pending_payment":
        return "pending_payment"
    return "received"


@dataclass(frozen=True)
class EventFilter:
    """The events page's filters (as the seller chose them; validated)."""

    status: str = ""
    gateway: str = ""
    stage: str = ""
    funnel_id: str = ""
    period: str = "7d"
    order_id: str = ""

    @classmethod
    def parse(
        cls,
        *,
        status: str = "",
        gateway: str = "",
        stage: str = "",
        funnel_id: str = "",
        period: str = "7d",
        order_id: str = "",
    ) -> EventFilter:
        """Unknown values are dropped (a hand-edited URL shows everything, never an error)."""
        try:
            funnel = str(uuid.UUID(funnel_id)) if funnel_id else ""
        except ValueError:
            funnel = ""
        return cls(
            status=status if status in STATUS_LABELS else "",
            gateway=gateway if gateway in GATEWAY_NAMES else "",
            stage=stage if stage in STAGE_LABELS else "",
            funnel_id=funnel,
            period=period if period in PERIODS else "7d",
            order_id=order_id.strip()[:200],
        )

    def since(self, now: datetime, local_midnight: datetime) -> datetime | None:
        """Start of the period (``local_midnight``: today's 00:00 in São Paulo)."""
        return {
            "hoje": local_midnight,
            "7d": now - timedelta(days=7),
            "30d": now - timedelta(days=30),
        }.get(self.period)

    def source(self) -> str:
        """Whose list drives a page: the owner that can apply the most selective filter itself.

        - ``ingestion``: no filter but gateway or period, an order id (exact and tiny), or a
          status the sale's own status decides (received, pending payment, ignored);
        - ``dispatcher``: a status its delivery states decide (``DELIVERY_STATES``), with the
          period, funnel and stage, served by its (tenant, state, event time) index;
        - ``matcher``: a stage or a funnel (the funnel the event was routed to: a webhook's
          sale has none of its own, it gets its click's), with the period and gateway.
        """
        if self.order_id:
            return "ingestion"
        if self.status in DELIVERY_STATES:
            return "dispatcher"
        if not self.status and (self.stage or self.funnel_id):
            return "matcher"
        return "ingestion"

    def checked_after_read(self) -> bool:
        """Whether some filter is left for ``keeps`` (the driving owner cannot apply it): the
        status or the stage when ingestion drives, the gateway when the dispatcher does."""
        source = self.source()
        if source == "ingestion":
            return bool(self.status or self.stage)
        return source == "dispatcher" and bool(self.gateway)

    def delivery_states(self) -> tuple[str, ...]:
        return DELIVERY_STATES.get(self.status, ())

    def ingestion_statuses(self) -> tuple[str, ...]:
        """The gateway statuses that can have this console status (narrows the read)."""
        if self.status == "pending_payment":
            return ("pending_payment",)
        if self.status == "ignored":
            return tuple(sorted(IGNORED_CONVERSION_STATUSES))
        if self.status:
            return ("approved", "pending_payment")
        return ()

    def keeps(self, row: EventRow) -> bool:
        """What the source's list may not have filtered (the status needs all three owners'
        records; the dispatcher does not know the gateway; ingestion does not know the stage)."""
        if self.status and row.status != self.status:
            return False
        if self.gateway and row.conversion.gateway != self.gateway:
            return False
        return not (self.stage and (row.match is None or row.match.stage != self.stage))
