"""Realistic landing-page and checkout traffic with ground truth, for the matcher's accuracy
benchmark and tests.

Visitors arrive from Meta ads (fbclid, ``_fbc``, ``_fbp``) or elsewhere, on mobile carrier IPs
shared by many people (CGNAT) or home connections, with common user agents; some fill a lead form;
buyers pay through several gateways that pass our session id (``sck``/``src``/``xcod``) only part
of the time and rarely send IP or user agent. iOS Safari strips fbclid; IPs change between click
and purchase; pix and boleto are paid days after the order; returning buyers come back through a
new session; 10% of purchases have no tracked click at all. ``Order.true_session`` is the truth.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp

from trackai.ingestion.v1 import events_pb2 as ingest

GATEWAYS = {
    # gateway: (share of orders, P(session id passed through), P(IP and UA sent), carrier field).
    # The tracking script decorates every checkout link; the id is lost when the buyer reaches
    # the checkout another way (a link shared over WhatsApp, another device, a typed URL).
    "kiwify": (0.35, 0.90, 0.0, "sck"),
    "hotmart": (0.25, 0.88, 0.0, "xcod"),
    "perfectpay": (0.15, 0.90, 0.6, "src"),
    "eduzz": (0.15, 0.85, 0.5, "sck"),
    "cakto": (0.10, 0.85, 0.7, "sck"),
}
_USER_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 1{m}; SM-A{n}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/12{m}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 Instagram 3{n}.0.0.0 (iPhone14,{m}; iOS 17_{m}; pt_BR)",
    "Mozilla/5.0 (Linux; Android 1{m}; moto g{n}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/12{m}.0.0.0 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/4{n}.0.0.0;]",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/12{m}.0.0.0 Safari/537.36",
]


Status: TypeAlias = ingest.ConversionStatus.ValueType
Method: TypeAlias = ingest.PaymentMethod.ValueType


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Session:
    tenant_id: str
    session_id: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    fbclid: str | None
    fbc: str | None
    fbp: str | None
    ip: str | None
    ua: str
    landing_url: str
    utm: dict[str, str]
    funnel_id: str | None = None
    email_hash: str | None = None
    phone_hash: str | None = None


@dataclass
class Order:
    tenant_id: str
    gateway: str
    order_id: str
    #: (status, time, payment method) in the order the webhooks arrive.
    statuses: list[tuple[Status, dt.datetime, Method]]
    amount: str
    product_id: str
    tracking: dict[str, str]
    extra: dict[str, str]
    ip: str | None
    ua: str
    email_hash: str
    phone_hash: str
    true_session: str | None
    kind: str = "tracked"


@dataclass
class Corpus:
    sessions: list[Session] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)


class TrafficGenerator:
    """Deterministic for a seed: ``generate(tenants, purchases, noise_per_purchase)``."""

    def __init__(self, seed: int = 7, start: dt.datetime | None = None) -> None:
        self.rng = random.Random(seed)
        # Recent enough for Meta's 7-day rule when the events are validated.
        self.start = start or dt.datetime.now(dt.UTC) - dt.timedelta(days=6)
        self.span = dt.timedelta(days=5)
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n:07d}{self.rng.getrandbits(48):012x}"

    def _ua(self) -> str:
        # Popular builds dominate: a few strings cover most sessions.
        template = self.rng.choices(_USER_AGENTS, weights=(30, 35, 12, 13, 10))[0]
        m = min(int(self.rng.expovariate(0.6)), 9)
        n = min(int(self.rng.expovariate(0.15)), 99)
        return template.format(m=m, n=n)

    def _ip(self, shared_pool: list[str]) -> str:
        r = self.rng.random()
        if r < 0.45:  # mobile carrier CGNAT: one public address for many people
            return self.rng.choice(shared_pool)
        if r < 0.92:  # home broadband: unique address in an ISP /24
            g = self.rng
            return f"189.{g.randrange(1, 60)}.{g.randrange(256)}.{g.randrange(1, 255)}"
        return (
            f"2804:{self.rng.randrange(16, 4000):x}:{self.rng.randrange(65536):x}:"
            f"{self.rng.randrange(65536):x}::{self.rng.randrange(1, 65535):x}"
        )

    def _session(
        self, tenant: str, at: dt.datetime, campaigns: list[str], shared: list[str]
    ) -> Session:
        ua = self._ua()
        from_ad = self.rng.random() < 0.7
        fbclid = f"IwAR{self.rng.getrandbits(120):030x}" if from_ad else None
        ms = int(at.timestamp() * 1000)
        if fbclid and "iPhone" in ua and "Version/" in ua:
            fbclid = None  # Safari's link tracking protection strips it
        duration = dt.timedelta(seconds=self.rng.expovariate(1 / 300))
        campaign = self.rng.choice(campaigns)
        return Session(
            tenant_id=tenant,
            session_id=self._id("s"),
            first_seen=at,
            last_seen=at + duration,
            fbclid=fbclid,
            fbc=f"fb.1.{ms}.{fbclid}" if fbclid else None,
            fbp=f"fb.1.{ms}.{self.rng.randrange(10**9, 10**10)}"
            if self.rng.random() < 0.8
            else None,
            ip=self._ip(shared),
            ua=ua,
            landing_url=f"https://lp.example.com/{campaign}",
            utm={"utm_source": "facebook" if from_ad else "google", "utm_campaign": campaign},
        )

    def _checkout_ip(self, session: Session, shared: list[str]) -> str:
        """Same address 60%, same /24 10% (DHCP), another network 30% (wifi <-> 4G)."""
        r = self.rng.random()
        if r < 0.6 and session.ip:
            return session.ip
        if r < 0.7 and session.ip and ":" not in session.ip:
            return session.ip.rsplit(".", 1)[0] + f".{self.rng.randrange(1, 255)}"
        return self._ip(shared)

    def _checkout_ua(self, session: Session) -> str:
        return session.ua if self.rng.random() < 0.85 else self._ua()

    def _when(self) -> dt.datetime:
        return self.start + self.span * self.rng.random()

    def generate(self, tenants: int, purchases: int, noise_per_purchase: int = 15) -> Corpus:
        corpus = Corpus()
        for t in range(tenants):
            tenant = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            campaigns = [f"camp{t}-{i}" for i in range(self.rng.randrange(2, 7))]
            r = self.rng
            shared = [
                f"177.{r.randrange(10, 80)}.{r.randrange(256)}.{r.randrange(1, 255)}"
                for _ in range(40)
            ]
            per_tenant = purchases // tenants
            for _ in range(per_tenant * noise_per_purchase):
                s = self._session(tenant, self._when(), campaigns, shared)
                if self.rng.random() < 0.15:  # leads that never buy
                    s.email_hash = sha(f"{s.session_id}@lead.example")
                corpus.sessions.append(s)
            for _ in range(per_tenant):
                corpus.orders.append(self._purchase(corpus, tenant, campaigns, shared))
        return corpus

    def _purchase(
        self, corpus: Corpus, tenant: str, campaigns: list[str], shared: list[str]
    ) -> Order:
        rng = self.rng
        person = self._id("p")
        email, phone = sha(f"{person}@buyer.example"), sha(f"55119{person[-8:]}")
        gateway = rng.choices(list(GATEWAYS), weights=[g[0] for g in GATEWAYS.values()])[0]
        _, pass_rate, ip_rate, carrier = GATEWAYS[gateway]
        clicked = self._when()
        tracked = rng.random() < 0.9
        session: Session | None = None
        kind = "untracked"
        if tracked:
            session = self._session(tenant, clicked, campaigns, shared)
            kind = "tracked"
            if rng.random() < 0.35:  # lead form before checkout
                session.email_hash, session.phone_hash = email, phone
            if rng.random() < 0.1:  # returning buyer: an older session left the same identity
                old = self._session(tenant, clicked - dt.timedelta(days=3), campaigns, shared)
                old.email_hash, old.phone_hash = email, phone
                if rng.random() < 0.7:  # same browser: the _fbp cookie and user agent persist
                    old.fbp, old.ua = session.fbp, session.ua
                corpus.sessions.append(old)
                kind = "returning"
            corpus.sessions.append(session)
        gap = dt.timedelta(minutes=min(rng.lognormvariate(2.5, 1.2), 60 * 48))
        checkout = (session.last_seen if session else clicked) + gap
        method = rng.choices(
            [
                ingest.PAYMENT_METHOD_CREDIT_CARD,
                ingest.PAYMENT_METHOD_PIX,
                ingest.PAYMENT_METHOD_BOLETO,
            ],
            weights=(55, 35, 10),
        )[0]
        statuses = []
        if method != ingest.PAYMENT_METHOD_CREDIT_CARD:
            statuses.append((ingest.CONVERSION_STATUS_PENDING_PAYMENT, checkout, method))
            paid = checkout + dt.timedelta(hours=rng.uniform(0.05, 60))
            statuses.append((ingest.CONVERSION_STATUS_APPROVED, paid, method))
        else:
            statuses.append((ingest.CONVERSION_STATUS_APPROVED, checkout, method))
        tracking: dict[str, str] = {}
        extra: dict[str, str] = {}
        ip, ua = None, ""
        if session is not None:
            if rng.random() < pass_rate:
                (extra if carrier == "xcod" else tracking)[carrier] = session.session_id
            tracking.update(session.utm)
            if session.fbc and rng.random() < 0.1:
                tracking["fbc"] = session.fbc
            if rng.random() < ip_rate:
                ip, ua = self._checkout_ip(session, shared), self._checkout_ua(session)
        elif rng.random() < ip_rate:
            ip, ua = self._ip(shared), self._ua()
        return Order(
            tenant_id=tenant,
            gateway=gateway,
            order_id=self._id("o").upper(),
            statuses=statuses,
            amount=f"{rng.choice([47, 97, 197, 297, 497])}.00",
            product_id=f"prod-{rng.randrange(5)}",
            tracking=tracking,
            extra=extra,
            ip=ip,
            ua=ua,
            email_hash=email,
            phone_hash=phone,
            true_session=session.session_id if session else None,
            kind=kind,
        )


def _ts(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _tracking(values: dict[str, str], extra: dict[str, str]) -> ingest.TrackingParameters:
    tracking = ingest.TrackingParameters(extra=extra)
    for key, value in values.items():
        setattr(tracking, key, value)
    return tracking


def hit_events(session: Session) -> Iterator[ingest.IngestEvent]:
    """The hits a session sends: a landing page view, and a lead when it left an identity."""
    tracking = dict(session.utm)
    if session.fbclid:
        tracking["fbclid"] = session.fbclid
    for key in ("fbc", "fbp"):
        value = getattr(session, key)
        if value:
            tracking[key] = value
    hits: list[tuple[ingest.HitType.ValueType, dt.datetime, ingest.HashedUserData]] = [
        (ingest.HIT_TYPE_PAGE_VIEW, session.first_seen, ingest.HashedUserData())
    ]
    if session.email_hash or session.phone_hash:
        hits.append(
            (
                ingest.HIT_TYPE_LEAD,
                session.last_seen,
                ingest.HashedUserData(em=session.email_hash or "", ph=session.phone_hash or ""),
            )
        )
    for kind, at, user_data in hits:
        yield ingest.IngestEvent(
            message_id=str(uuid.uuid4()),
            tenant_id=session.tenant_id,
            received_time=_ts(at),
            hit=ingest.BrowserHit(
                hit_type=kind,
                session_id=session.session_id,
                page_url=session.landing_url,
                tracking=_tracking(tracking, {}),
                client_ip=session.ip or "",
                user_agent=session.ua,
                user_data=user_data,
                event_time=_ts(at),
                funnel_id=session.funnel_id or "",
            ),
        )


def conversion_events(order: Order) -> Iterator[ingest.IngestEvent]:
    """One message per webhook of the order, in arrival order."""
    for status, at, method in order.statuses:
        yield ingest.IngestEvent(
            message_id=str(uuid.uuid4()),
            tenant_id=order.tenant_id,
            received_time=_ts(at),
            conversion=ingest.Conversion(
                order_id=order.order_id,
                gateway=order.gateway,
                status=status,
                gateway_status=ingest.ConversionStatus.Name(status).lower(),
                event_time=_ts(at),
                amount=order.amount,
                currency="BRL",
                product_id=order.product_id,
                payment_method=method,
                tracking=_tracking(order.tracking, order.extra),
                client_ip=order.ip or "",
                user_agent=order.ua,
                user_data=ingest.HashedUserData(
                    em=order.email_hash, ph=order.phone_hash, country=sha("br")
                ),
                conversion_id=str(uuid.uuid4()),
            ),
        )


# Hand-written messages for tests: one hit or one webhook with exactly the fields given.

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
EMAIL = "a" * 64
PHONE = "b" * 64


def hit_event(
    tenant: str,
    session: str,
    at: dt.datetime,
    *,
    ip: str = "",
    ua: str = ANDROID,
    kind: ingest.HitType.ValueType = ingest.HIT_TYPE_PAGE_VIEW,
    em: str = "",
    ph: str = "",
    funnel: str = "",
    visitor: str = "",
    **tracking: str,
) -> ingest.IngestEvent:
    return ingest.IngestEvent(
        message_id=str(uuid.uuid4()),
        tenant_id=tenant,
        received_time=_ts(at),
        hit=ingest.BrowserHit(
            hit_type=kind,
            session_id=session,
            page_url="https://lp.example.com/oferta",
            tracking=_tracking(tracking, {}),
            client_ip=ip,
            user_agent=ua,
            user_data=ingest.HashedUserData(em=em, ph=ph, external_id=visitor),
            event_time=_ts(at),
            funnel_id=funnel,
        ),
    )


def conversion_event(
    tenant: str,
    order: str,
    at: dt.datetime,
    *,
    status: Status = ingest.CONVERSION_STATUS_APPROVED,
    method: Method = ingest.PAYMENT_METHOD_CREDIT_CARD,
    ip: str = "",
    ua: str = "",
    em: str = EMAIL,
    ph: str = "",
    gateway: str = "kiwify",
    extra: dict[str, str] | None = None,
    **tracking: str,
) -> ingest.IngestEvent:
    return ingest.IngestEvent(
        message_id=str(uuid.uuid4()),
        tenant_id=tenant,
        received_time=_ts(at),
        conversion=ingest.Conversion(
            order_id=order,
            gateway=gateway,
            status=status,
            event_time=_ts(at),
            amount="197.00",
            currency="BRL",
            product_id="curso-1",
            payment_method=method,
            tracking=_tracking(tracking, extra or {}),
            client_ip=ip,
            user_agent=ua,
            user_data=ingest.HashedUserData(em=em, ph=ph),
            conversion_id=str(uuid.uuid4()),
        ),
    )
