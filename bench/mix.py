"""The ingress's real load, for the end-to-end benchmark: visitors' page views, leads and checkout
starts through the collect endpoint, and every gateway's webhooks (approved sales, pix pending
then paid, refunds, repeated postbacks), each built from that gateway's real payload and signed
or tokened as the gateway does it.

A sale is a *journey*, sent in order on one connection: the buyer's page views, sometimes a lead
form, the checkout start, then the gateway's webhooks. Between journeys come the page views of
visitors who never buy, so that page views outnumber sales about a hundred to one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import qs_codec

from bench.servers import HOST, REPO_ROOT

FIXTURES = REPO_ROOT / "services/ingestion/tests/fixtures/gateways"
#: The landing page of the tenant (an allowed domain) and the Origin the beacons send.
ORIGIN = "https://lp.bench.example"
USER_AGENT = "Mozilla/5.0 (Linux; Android 14; SM-A546E) Chrome/131.0 Mobile Safari/537.36"
#: The tenant's gateway credentials. Perfect Pay, Cakto, Monetizze, Braip and Ticto carry theirs
#: in the body (the fixtures' own values); Greenn's rides in a ``token`` header.
SECRETS = {
    "kiwify": "bench-kiwify-token",
    "hotmart": "bench-hotmart-hottok",
    "perfectpay": "0123456789abcdef0123456789abcdef",
    "eduzz": "bench-eduzz-signing-secret",
    "cakto": "f8c3de3d-1fea-4d7c-a8b0-29f63c4c3454",
    "monetizze": "ffffffffffffffffffffffffffffffff",
    "braip": "0000000000000000000000000000000000000000",
    "ticto": "REDACTED_TICTO_WEBHOOK_TOKEN",
    "greenn": "bench-greenn-secret",
}
#: Share of the sales per gateway (the big four first, as in Brazilian infoproducts).
SHARES = {
    "kiwify": 25,
    "hotmart": 20,
    "perfectpay": 10,
    "eduzz": 10,
    "cakto": 10,
    "monetizze": 7,
    "braip": 6,
    "ticto": 6,
    "greenn": 6,
}
#: Gateways whose pix/boleto "waiting for payment" postback the mix sends before the approval.
PENDING = ("kiwify", "perfectpay", "monetizze", "braip")
PAGE_VIEWS_PER_SALE = 100
PENDING_SHARE = 0.15
REFUND_SHARE = 0.05
DUPLICATE_SHARE = 0.05
LEAD_SHARE = 0.35
_BRASILIA = ZoneInfo("America/Sao_Paulo")

Status = str  # "approved" | "refunded" | "pending"


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def _local(now: dt.datetime) -> str:
    return now.astimezone(_BRASILIA).strftime("%Y-%m-%d %H:%M:%S")


def _iso(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _kiwify(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("kiwify-3.json")
    body.pop("Subscription", None)
    body.pop("subscription_id", None)
    event, state = {
        "approved": ("order_approved", "paid"),
        "refunded": ("order_refunded", "refunded"),
        "pending": ("pix_created", "waiting_payment"),
    }[status]
    body.update(
        order_id=order,
        webhook_event_type=event,
        order_status=state,
        created_at=_local(now),
        updated_at=_local(now),
        approved_date=_local(now) if status != "pending" else None,
        refunded_at=_local(now) if status == "refunded" else None,
        payment_method="pix" if status == "pending" else body.get("payment_method"),
    )
    body["TrackingParameters"] = dict(body["TrackingParameters"], sck=session)
    return body


def _hotmart(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("hotmart-3.json")
    ms = int(now.timestamp() * 1000)
    body["event"] = {"approved": "PURCHASE_APPROVED", "refunded": "PURCHASE_REFUNDED"}[status]
    body["creation_date"] = ms
    purchase = body["data"]["purchase"]
    purchase.update(transaction=order, approved_date=ms, order_date=ms)
    purchase["status"] = status.upper()
    purchase["origin"] = {"sck": session, "xcod": session, "src": "bench"}
    return body


def _perfectpay(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("perfectpay-1.json")
    enum = {"approved": 2, "refunded": 7, "pending": 1}[status]
    key = {"approved": "approved", "refunded": "refunded", "pending": "pending"}[status]
    body.update(
        code=order,
        sale_status_enum=enum,
        sale_status_enum_key=key,
        sale_status_detail=key,
        date_created=_local(now),
        date_approved=_local(now) if status != "pending" else None,
    )
    if status == "pending":
        body.update(payment_type_enum=7, payment_type_enum_key="pix")
    body["metadata"] = dict(body["metadata"], src=session)
    return body


def _eduzz(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("eduzz-2.json")
    body["event"] = {"approved": "myeduzz.invoice_paid", "refunded": "myeduzz.invoice_refunded"}[
        status
    ]
    body["sentDate"] = _iso(now)
    body["data"] = dict(
        body["data"],
        id=order,
        status="paid" if status == "approved" else status,
        paidAt=_iso(now),
        updatedAt=_iso(now),
        createdAt=_iso(now),
        tracker={"code1": session},
    )
    return body


def _cakto(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("cakto-1.json")
    body["event"] = {"approved": "purchase_approved", "refunded": "refund"}[status]
    body["data"] = dict(
        body["data"],
        id=order,
        status="paid" if status == "approved" else "refunded",
        paidAt=_iso(now),
        createdAt=_iso(now),
        refundedAt=_iso(now) if status == "refunded" else None,
        sck=session,
    )
    # Not the documentation's sample buyer (the adapter ignores that one as a test).
    body["data"]["customer"] = dict(body["data"]["customer"], email="comprador@cliente.com.br")
    return body


def _monetizze(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("monetizze-1.json")
    del body["json"]
    body["codigo_status"] = {"approved": "2", "refunded": "4", "pending": "1"}[status]
    body["venda"] = dict(
        body["venda"],
        codigo=order,
        dataInicio=_local(now),
        dataFinalizada=_local(now) if status != "pending" else "",
        src=session,
    )
    return body


def _braip(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("braip-1.json")
    body.update(
        trans_key=order,
        trans_status={
            "approved": "Pagamento Aprovado",
            "refunded": "Devolvida",
            "pending": "Aguardando Pagamento",
        }[status],
        trans_createdate=_local(now),
        trans_updatedate=_local(now),
        trans_payment_date=_local(now) if status != "pending" else None,
    )
    body["meta"] = dict(body["meta"], src=session)
    return body


def _ticto(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("ticto-1.json")
    body.update(status={"approved": "approved", "refunded": "refunded"}[status])
    body["status_date"] = _local(now)
    body["order"] = dict(body["order"], hash=order, order_date=_local(now))
    body["tracking"] = dict(body["tracking"], sck=session)
    return body


def _greenn(order: str, session: str, status: Status, now: dt.datetime) -> dict[str, Any]:
    body = _fixture("greenn-1.json")
    state = {"approved": "paid", "refunded": "refunded"}[status]
    body["sale"] = dict(
        body["sale"], id=order, status=state, created_at=_local(now), updated_at=_local(now)
    )
    if "currentStatus" in body:
        body["currentStatus"] = state
    body["saleMetas"] = [{"meta_key": "src", "meta_value": session}]
    return body


_BUILDERS: dict[str, Callable[[str, str, Status, dt.datetime], dict[str, Any]]] = {
    "kiwify": _kiwify,
    "hotmart": _hotmart,
    "perfectpay": _perfectpay,
    "eduzz": _eduzz,
    "cakto": _cakto,
    "monetizze": _monetizze,
    "braip": _braip,
    "ticto": _ticto,
    "greenn": _greenn,
}


def webhook(
    port: int, tenant_id: str, gateway: str, order: str, *, session: str, status: Status
) -> bytes:
    """The raw HTTP request ``gateway`` sends for ``order`` in ``status``, signed as it signs."""
    body = _BUILDERS[gateway](order, session, status, dt.datetime.now(dt.UTC))
    headers = {"Content-Type": "application/json"}
    query = ""
    if gateway == "monetizze":
        # As Monetizze posts it: PHP-style keys, form-encoded.
        raw = qs_codec.encode(body, qs_codec.EncodeOptions(encode_values_only=False)).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        raw = json.dumps(body, separators=(",", ":")).encode()
    secret = SECRETS[gateway]
    if gateway == "kiwify":
        query = "?signature=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
    elif gateway == "hotmart":
        headers["X-HOTMART-HOTTOK"] = secret
    elif gateway == "eduzz":
        headers["x-signature"] = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    elif gateway == "greenn":
        headers["token"] = secret
    return _request(port, f"/api/v1/webhooks/{gateway}/{tenant_id}{query}", raw, headers)


def hit(port: int, tenant_id: str, kind: str, session: str, event: str, **fields: str) -> bytes:
    """A beacon of the tracking script (``text/plain`` JSON from the landing page)."""
    payload = {
        "type": kind,
        "session_id": session,
        "event_id": event,
        "page_url": f"{ORIGIN}/oferta?utm_source=facebook",
        "referrer": "https://l.facebook.com/",
        "utm_source": "facebook",
        "utm_medium": "cpc",
        "utm_campaign": "lancamento",
        **fields,
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "text/plain;charset=UTF-8",
        "Origin": ORIGIN,
        "User-Agent": USER_AGENT,
    }
    return _request(port, f"/api/v1/collect/{tenant_id}", raw, headers)


def _request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


@dataclass(frozen=True)
class Step:
    """One request of a journey and what the ingress must answer."""

    request: Callable[[], bytes]
    #: "hit", or the webhook's status ("approved", "pending", "refunded", "duplicate").
    kind: str
    gateway: str = ""
    order: str = ""


@dataclass
class Mix:
    """Journeys for one tenant on ``port``; deterministic for a seed."""

    port: int
    tenant_id: str
    run: str
    seed: int = 14
    rng: random.Random = field(init=False)
    _n: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self.run}{self._n:09d}"

    def _hit(self, kind: str, session: str, **fields: str) -> Step:
        event = self._id("ev")
        return Step(lambda: hit(self.port, self.tenant_id, kind, session, event, **fields), "hit")

    def _webhook(self, gateway: str, order: str, session: str, status: Status, kind: str) -> Step:
        return Step(
            lambda: webhook(
                self.port, self.tenant_id, gateway, order, session=session, status=status
            ),
            kind,
            gateway,
            order,
        )

    def visitor(self) -> list[Step]:
        """A visitor who does not buy: a few page views of one session."""
        session = self._id("ta")
        return [self._hit("page_view", session) for _ in range(self.rng.randint(1, 4))]

    def buyer(self) -> list[Step]:
        """Page views from a Meta ad, sometimes a lead, the checkout start, then the webhooks."""
        rng = self.rng
        session = self._id("ta")
        fbclid = f"IwAR{self.run}{self._n:09d}"
        steps = [self._hit("page_view", session, fbclid=fbclid)]
        steps += [self._hit("page_view", session) for _ in range(rng.randint(0, 2))]
        if rng.random() < LEAD_SHARE:
            email = f"buyer.{self._n}@cliente-exemplo.com.br"
            steps.append(self._hit("lead", session, email=email, phone="+5511987654321"))
        steps.append(self._hit("checkout_start", session))
        gateway = rng.choices(list(SHARES), weights=list(SHARES.values()))[0]
        order = self._id(f"{gateway[:2]}-")
        if gateway in PENDING and rng.random() < PENDING_SHARE:
            steps.append(self._webhook(gateway, order, session, "pending", "pending"))
        sale = self._webhook(gateway, order, session, "approved", "approved")
        steps.append(sale)
        if rng.random() < DUPLICATE_SHARE:
            # The gateway posts the same sale again (a retry, a second recipient's postback).
            steps.append(Step(sale.request, "duplicate", gateway, order))
        if rng.random() < REFUND_SHARE:
            steps.append(self._webhook(gateway, order, session, "refunded", "refunded"))
        return steps

    def journeys(self) -> Iterator[list[Step]]:
        """Buyers among non-buying visitors, page views ~``PAGE_VIEWS_PER_SALE`` per sale."""
        while True:
            buyer = self.buyer()
            yield buyer
            views = sum(step.kind == "hit" for step in buyer)
            while views < PAGE_VIEWS_PER_SALE:
                visitor = self.visitor()
                views += len(visitor)
                yield visitor


def every_gateway_once(mix: Mix) -> Iterator[list[Step]]:
    """One buyer per gateway (priming: every adapter's code path warmed once)."""
    for gateway in SHARES:
        session = mix._id("ta")
        order = mix._id(f"{gateway[:2]}-")
        yield [
            mix._hit("page_view", session, fbclid=f"IwAR{mix.run}{mix._n:09d}"),
            mix._webhook(gateway, order, session, "approved", "approved"),
        ]
