"""The Meta server event sent for a conversion, built from the purchase and its matched session.

Hashed keys come from the purchase first, then from the identities seen on the matched session;
``fbc``/``fbp``/IP/user agent from the purchase when it carries them, else from the click. Values
Meta would reject (malformed ``fbc``/``fbp``/IP, non-hex hashes) are dropped here, so one bad value
never costs the whole batch at the dispatcher.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from google.protobuf.timestamp_pb2 import Timestamp

from trackai.matcher.v1 import events_pb2 as pb
from trackai_kit.addresses import public_ip
from trackai_kit.pii import hash_value, is_sha256_hex
from trackai_matcher.domain.emq import EmqEstimate, estimate_emq
from trackai_matcher.domain.model import Click, Purchase, Stage, as_values
from trackai_matcher.domain.tenants import Route
from trackai_matcher.service_layer.ports import SessionIdentity

_FBC = re.compile(r"fb\.\d+\.\d{13}\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?")
_FBP = re.compile(r"fb\.\d+\.\d{13}\.\d+(\.[A-Za-z0-9_-]+)?")
_FBCLID = re.compile(r"[A-Za-z0-9_-]+")
#: Namespace of DispatchRequest message ids: one message per event id, stable across retries.
_MESSAGE_NS = uuid.UUID("0b7e6a52-5c1d-4c55-9a59-1f6f3d0c2a11")
#: Meta accepts arrays of hashed values; a few per key are plenty.
_MAX_VALUES = 3

STAGES = {
    Stage.NONE: pb.MATCH_STAGE_NONE,
    Stage.DETERMINISTIC: pb.MATCH_STAGE_DETERMINISTIC,
    Stage.SEMI: pb.MATCH_STAGE_SEMI_DETERMINISTIC,
    Stage.PROBABILISTIC: pb.MATCH_STAGE_PROBABILISTIC,
}


def _valid_ip(value: str | None) -> str:
    # Public addresses only: rows stored before ingestion filtered them may hold a proxy's.
    return (public_ip(value) or "") if value else ""


def _fbc(purchase: Purchase, click: Click | None) -> str:
    """The purchase's ``_fbc``, else the click's, else one built from an fbclid as Meta says
    (``fb.1.<ms when first seen>.<fbclid>``, case preserved)."""
    for value in (purchase.tracking.fbc, click.fbc if click else None):
        if value and _FBC.fullmatch(value):
            return value
    sources = [(click.fbclid, click.first_seen_at)] if click is not None and click.fbclid else []
    if purchase.tracking.fbclid:
        sources.append((purchase.tracking.fbclid, purchase.event_time))
    for fbclid, seen in sources:
        if _FBCLID.fullmatch(fbclid):
            return f"fb.1.{int(seen.timestamp() * 1000)}.{fbclid}"
    return ""


def _fbp(purchase: Purchase, click: Click | None) -> str:
    for value in (purchase.tracking.fbp, click.fbp if click else None):
        if value and _FBP.fullmatch(value):
            return value
    return ""


def _hashed(values: Sequence[str | None]) -> list[str]:
    return as_values([v for v in values if v and is_sha256_hex(v)])[:_MAX_VALUES]


def build_user_data(
    purchase: Purchase, click: Click | None, identities: Sequence[SessionIdentity]
) -> pb.UserData:
    h = purchase.hashed
    external = [h.get("external_id")]
    if click is not None and click.visitor_id:
        # The tracking script's visitor id: what the pixel on the tenant's pages was given as
        # external_id, already digest-shaped, so sent as is (docs/emq.md).
        external.append(click.visitor_id)
    external += [hash_value("external_id", i.external_id) for i in identities]
    return pb.UserData(
        em=_hashed([h.get("em"), *(i.email_hash for i in identities)]),
        ph=_hashed([h.get("ph"), *(i.phone_hash for i in identities)]),
        fn=_hashed([h.get("fn")]),
        ln=_hashed([h.get("ln")]),
        ct=_hashed([h.get("ct")]),
        st=_hashed([h.get("st")]),
        zp=_hashed([h.get("zp")]),
        country=_hashed([h.get("country")]),
        db=_hashed([h.get("db")]),
        ge=_hashed([h.get("ge")]),
        external_id=_hashed(external),
        client_ip_address=_valid_ip(purchase.client_ip)
        or _valid_ip(click.client_ip if click else None),
        client_user_agent=purchase.user_agent or (click.user_agent if click else None) or "",
        fbc=_fbc(purchase, click),
        fbp=_fbp(purchase, click),
    )


def present_keys(user_data: pb.UserData) -> set[str]:
    """Names of the keys that carry a value (for the EMQ estimate)."""
    return {field.name for field, value in user_data.ListFields() if value}


def _value(amount: str) -> str:
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return ""
    return amount if value.is_finite() and value >= 0 else ""


def action_source_of(
    purchase: Purchase, click: Click | None, route: Route, user_data: pb.UserData
) -> tuple[str, str]:
    """Meta's ``action_source`` and ``event_source_url`` (docs/emq.md, "action_source").

    A renewal is ``system_generated`` (an automatic charge). Any other checkout event happened on
    a web page: ``website``, with the page (the matched click's landing page, else the checkout
    page the gateway names, else the funnel's landing page) and the buyer's user agent (the
    gateway's, else the click's). Without either Meta would refuse a website event, so it goes
    as ``other`` rather than as an automatic conversion it is not.
    """
    if purchase.renewal:
        return "system_generated", ""
    url = (click.landing_url if click else None) or purchase.checkout_url or route.landing_url
    if not user_data.client_user_agent and click is not None and click.user_agent:
        user_data.client_user_agent = click.user_agent
    if url and user_data.client_user_agent:
        return "website", url
    return "other", ""


@dataclass(frozen=True)
class BuiltEvent:
    request: pb.DispatchRequest
    emq: EmqEstimate


def build_dispatch(
    *,
    purchase: Purchase,
    event_name: str,
    event_id: str,
    click: Click | None,
    identities: Sequence[SessionIdentity],
    route: Route,
    stage: Stage,
    score: float | None,
    now: dt.datetime,
) -> BuiltEvent:
    """The DispatchRequest for one registered event (``route.destination`` may be None: the
    event is then recorded but not sent)."""
    user_data = build_user_data(purchase, click, identities)
    emq = estimate_emq(present_keys(user_data))
    action_source, source_url = action_source_of(purchase, click, route, user_data)
    event = pb.ServerEvent(
        event_name=event_name,
        event_time=int(purchase.event_time.timestamp()),
        event_id=event_id,
        action_source=action_source,
        event_source_url=source_url,
        user_data=user_data,
        custom_data=pb.CustomData(
            value=_value(purchase.amount),
            currency=purchase.currency.upper(),
            content_ids=[purchase.product_id] if purchase.product_id else [],
            content_type="product" if purchase.product_id else "",
            order_id=purchase.order_id,
        ),
    )
    created = Timestamp()
    created.FromDatetime(now)
    destination = route.destination
    request = pb.DispatchRequest(
        message_id=str(uuid.uuid5(_MESSAGE_NS, event_id)),
        tenant_id=purchase.tenant_id,
        funnel_id=route.funnel_id or "",
        pixel_id=destination.pixel_id if destination else "",
        event=event,
        match_stage=STAGES[stage],
        match_score=score or 0.0,
        emq=emq.score,
        conversion_id=purchase.conversion_id or "",
        create_time=created,
        test_event_code=destination.test_event_code if destination else "",
    )
    return BuiltEvent(request, emq)
