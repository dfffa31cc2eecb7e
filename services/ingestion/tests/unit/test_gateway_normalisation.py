"""Every real payload of the five gateways normalises to the right order, status, time and amount."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from trackai_ingestion.domain.gateways import ADAPTERS
from trackai_ingestion.domain.model import (
    Accept,
    CanonicalStatus,
    Conversion,
    Ignore,
    InvalidPayload,
    PaymentMethod,
)
from trackai_ingestion.domain.redaction import redact_body

from ..conftest import PLAINTEXT, fixture_json, sha256_text


def _accept(gateway: str, body: dict[str, Any]) -> Accept:
    result = ADAPTERS[gateway].interpret(body)
    assert isinstance(result, Accept), result
    return result


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# (fixture, gateway, order id, status, event time UTC, amount, method, is a known test payload)
CASES = [
    ("kiwify-1.json", "kiwify", "ce936450-f853-4f66-9c72-03964fa436ea",
     CanonicalStatus.PENDING_PAYMENT, _utc(2026, 6, 8, 18, 42), Decimal("18.40"),
     PaymentMethod.BOLETO, True),
    ("kiwify-2.json", "kiwify", "d233a1b5-aa46-4fc4-bae9-8058d2c85634",
     CanonicalStatus.PENDING_PAYMENT, _utc(2026, 6, 8, 18, 42), Decimal("67.72"),
     PaymentMethod.PIX, True),
    ("kiwify-3.json", "kiwify", "aac95806-d613-4cc6-80f9-f74882dbbce2",
     CanonicalStatus.APPROVED, _utc(2026, 6, 8, 14, 53), Decimal("5.00"),
     PaymentMethod.CREDIT_CARD, False),
    ("kiwify-4.json", "kiwify", "c6euk9v1lfj9jqxhfs", CanonicalStatus.ABANDONED,
     datetime(2026, 6, 15, 15, 44, 25, 411000, tzinfo=UTC), None, PaymentMethod.UNKNOWN, False),
    ("perfectpay-1.json", "perfectpay", "PPCPMTB5H3745O", CanonicalStatus.APPROVED,
     _utc(2025, 9, 25, 3, 30, 20), Decimal("5"), PaymentMethod.CREDIT_CARD, False),
    ("perfectpay-3.json", "perfectpay", "PPCPMTB5HKA4O6QWKO", CanonicalStatus.APPROVED,
     _utc(2026, 9, 19, 0, 36, 45), Decimal("29.9"), PaymentMethod.PIX, False),
    ("hotmart-1.json", "hotmart", "HP16015479281022", CanonicalStatus.APPROVED,
     _utc(2017, 11, 27, 11, 49, 6), Decimal("1500"), PaymentMethod.CREDIT_CARD, True),
    ("hotmart-3.json", "hotmart", "HPCOMUNIDADE001", CanonicalStatus.APPROVED,
     _utc(2024, 4, 5, 19, 34, 38), Decimal("540.0"), PaymentMethod.CREDIT_CARD, False),
    ("eduzz-2.json", "eduzz", "12345678", CanonicalStatus.APPROVED,
     _utc(2024, 1, 10, 17, 45), Decimal("197.0"), PaymentMethod.CREDIT_CARD, False),
    ("cakto-1.json", "cakto", "87956abe-940e-4e8b-8a27-82c482920f64", CanonicalStatus.APPROVED,
     _utc(2026, 6, 26, 12, 0), Decimal("90"), PaymentMethod.CREDIT_CARD, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "gateway", "order_id", "status", "event_time", "amount", "method", "is_test"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_fixture_normalises(
    name: str,
    gateway: str,
    order_id: str,
    status: CanonicalStatus,
    event_time: datetime,
    amount: Decimal | None,
    method: PaymentMethod,
    is_test: bool,
) -> None:
    result = _accept(gateway, fixture_json(name))
    conversion = result.conversion
    assert conversion.gateway == gateway
    assert conversion.order_id == order_id
    assert conversion.status is status
    assert conversion.event_time == event_time
    assert conversion.event_time.utcoffset() is not None
    assert conversion.amount == amount
    if amount is not None:
        assert conversion.currency == "BRL"
    assert conversion.payment_method is method
    assert (result.test_reason is not None) is is_test


def test_kiwify_cents_net_amounts_are_not_used() -> None:
    # my_commission (1638) and the commissioned stores' values are net; Meta wants the gross sale.
    conversion = _accept("kiwify", fixture_json("kiwify-1.json")).conversion
    assert conversion.amount == Decimal("18.40")


def test_kiwify_customer_is_hashed_and_tracking_read() -> None:
    conversion = _accept("kiwify", fixture_json("kiwify-3.json")).conversion
    assert conversion.user_data.em == sha256_text("buyer@example.com")
    assert conversion.user_data.ph == sha256_text("5511900000000")
    assert conversion.user_data.fn == sha256_text("redacted")
    assert conversion.user_data.ln == sha256_text("name")
    assert conversion.user_data.country == sha256_text("br")
    assert conversion.tracking.sck == "01hmtkn-fake-uuid-aaa"
    assert conversion.tracking.src is None
    # The fixture's buyer IP is a documentation address: not public, so never sent to Meta.
    assert conversion.client_ip is None
    assert conversion.product_name == "MeControla - Seu agente financeiro direto no WhatsApp"


def test_kiwify_address_hashes_as_meta_normalises() -> None:
    conversion = _accept("kiwify", fixture_json("kiwify-1.json")).conversion
    assert conversion.user_data.ct == sha256_text("balneáriocamboriú")
    assert conversion.user_data.st == sha256_text("sc")
    assert conversion.user_data.zp == sha256_text("88330756")
    # +41 945968750 is not a valid number: no phone hash rather than a wrong one.
    assert conversion.user_data.ph is None
    assert conversion.client_ip == "82.253.125.70"


def test_perfectpay_split_phone_ip_and_user_agent() -> None:
    body = fixture_json("perfectpay-1.json")
    conversion = _accept("perfectpay", body).conversion
    assert conversion.user_data.ph == sha256_text("5531900000000")
    # The fixture's 2001:db8::1 is a documentation address: dropped; a public one is kept.
    assert conversion.client_ip is None
    body["customer"]["ip"] = "2804:14c:65a1::42"
    assert _accept("perfectpay", body).conversion.client_ip == "2804:14c:65a1::42"
    assert conversion.user_agent is not None and conversion.user_agent.startswith("Mozilla/5.0")
    assert conversion.product_id == "PPPBDC49"
    pix = _accept("perfectpay", fixture_json("perfectpay-3.json")).conversion
    assert pix.user_data.ph == sha256_text("5516900000000")
    assert pix.user_data.ct == sha256_text("ribeirãopreto")
    assert pix.user_data.st == sha256_text("sp")


def test_campaign_tags_lose_personal_data_click_ids_do_not() -> None:
    body = fixture_json("perfectpay-1.json")
    body["metadata"].update(
        utm_content="maria@example.com",
        utm_term="ligar +55 11 9 1234-5678",
        src="ta0123456789abcdefGHIJ",
        sck="cpf 123 456 789 09",
        utm_campaign="launch-2026",
    )
    tracking = _accept("perfectpay", body).conversion.tracking
    assert tracking.utm["utm_content"] == "[EMAIL]"
    assert "1234-5678" not in tracking.utm["utm_term"]
    assert tracking.sck is not None and "789" not in tracking.sck
    assert tracking.src == "ta0123456789abcdefGHIJ"
    assert tracking.utm["utm_campaign"] == "launch-2026"


def test_hotmart_origin_tracking_and_phone() -> None:
    conversion = _accept("hotmart", fixture_json("hotmart-3.json")).conversion
    assert conversion.tracking.src == "chat-youtube"
    assert conversion.tracking.sck == "chat-youtube"
    assert conversion.tracking.extra == {"xcod": "live-001"}
    assert conversion.user_data.ph == sha256_text("5511999999999")
    assert conversion.user_data.st == sha256_text("sp")
    assert conversion.user_data.zp == sha256_text("01001000")
    assert conversion.product_id == "12345"


def test_eduzz_v3_utm() -> None:
    conversion = _accept("eduzz", fixture_json("eduzz-2.json")).conversion
    assert conversion.tracking.utm == {
        "utm_source": "facebook",
        "utm_campaign": "black-friday",
        "utm_medium": "cpc",
    }
    assert conversion.product_id == "P567"
    assert conversion.user_data.em == sha256_text("joao@email.com")


def test_eduzz_legacy_format_is_ignored_with_a_reason() -> None:
    result = ADAPTERS["eduzz"].interpret(fixture_json("eduzz-1.json"))
    assert isinstance(result, Ignore)
    assert "legacy" in result.reason


def test_eduzz_ping_is_a_test() -> None:
    result = ADAPTERS["eduzz"].interpret({"event": "ping"})
    assert isinstance(result, Ignore) and result.is_test


def test_cakto_grouped_dispatch_sums_the_bump_into_the_main_order() -> None:
    body = fixture_json("cakto-1.json")
    main = dict(body["data"], id="main-order", customer={"email": "real@buyer.com"})
    bump = dict(main, id="bump-order", offer_type="orderbump", amount=19.9)
    result = _accept("cakto", {**body, "data": [bump, main]})
    assert result.conversion.order_id == "main-order"
    assert result.conversion.amount == Decimal("109.9")
    assert result.test_reason is None


@pytest.mark.parametrize(
    ("gateway", "event"),
    [
        ("kiwify", "subscription_late"),
        ("hotmart", "CLUB_FIRST_ACCESS"),
        ("cakto", "initiate_checkout"),
    ],
)
def test_unsupported_events_are_ignored(gateway: str, event: str) -> None:
    bodies = {
        "kiwify": dict(fixture_json("kiwify-3.json"), webhook_event_type=event),
        "hotmart": dict(fixture_json("hotmart-3.json"), event=event),
        "cakto": dict(fixture_json("cakto-1.json"), event=event),
    }
    result = ADAPTERS[gateway].interpret(bodies[gateway])
    assert isinstance(result, Ignore)
    assert event in result.reason


@pytest.mark.parametrize(
    ("gateway", "mutate", "field"),
    [
        ("kiwify", lambda b: b.pop("order_id"), "order_id"),
        ("perfectpay", lambda b: b.pop("code"), "code"),
        (
            "hotmart",
            lambda b: b["data"]["purchase"].pop("transaction"),
            "data.purchase.transaction",
        ),
        ("eduzz", lambda b: b["data"].pop("id"), "data.id"),
        ("cakto", lambda b: b["data"].pop("id"), "data.id"),
        (
            "kiwify",
            lambda b: b["Commissions"].update(charge_amount="abc"),
            "Commissions.charge_amount",
        ),
        ("perfectpay", lambda b: b.update(sale_amount=-1), "sale_amount"),
        (
            "hotmart",
            lambda b: b["data"]["purchase"].update(approved_date="x"),
            "data.purchase.approved_date",
        ),
        ("kiwify", lambda b: b.update(approved_date="08/06/2026"), "approved_date"),
    ],
)
def test_missing_or_bad_fields_are_named(gateway: str, mutate: Any, field: str) -> None:
    name = {"kiwify": "kiwify-3.json", "perfectpay": "perfectpay-1.json",
            "hotmart": "hotmart-3.json", "eduzz": "eduzz-2.json", "cakto": "cakto-1.json"}[gateway]  # fmt: skip
    body = fixture_json(name)
    mutate(body)
    with pytest.raises(InvalidPayload) as caught:
        ADAPTERS[gateway].interpret(body)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "name",
    ["kiwify-1.json", "kiwify-2.json", "kiwify-3.json", "kiwify-4.json", "perfectpay-1.json",
     "perfectpay-3.json", "hotmart-1.json", "hotmart-3.json", "eduzz-1.json", "eduzz-2.json",
     "cakto-1.json", "braip-1.json", "greenn-1.json", "monetizze-1.json", "ticto-1.json"],
)  # fmt: skip
def test_redacted_body_keeps_no_personal_data_or_secret(name: str) -> None:
    import json

    from trackai_testing.personal_data import find_leaks, personal_values

    payload = fixture_json(name)
    stored = json.dumps(redact_body(payload), ensure_ascii=False)
    leaked = [value for value in PLAINTEXT if value in stored]
    assert leaked == []
    # The buyer's own values, derived from the payload whatever the gateway calls them.
    assert find_leaks(personal_values(payload), stored) == []


def test_redacted_body_is_an_allow_list_of_sale_fields() -> None:
    """A field nobody listed (a gateway's new buyer field, a free-text note) is not stored."""
    body = {
        "order_id": "o-1",
        "order_status": "paid",
        "Product": {"product_name": "Curso", "product_id": "p-1"},
        "whatsapp": "11 98765 4321",
        "apelido": "Mari",
        "obs": "entregar para Maria na portaria",
        "buyer_nickname": None,
        "trans_items[0][item_value]": 5,
        "items": [{"item_value": 5, "nota": "Maria"}],
        "TrackingParameters": {"utm_content": "maria@example.com", "sck": "ta0123456789"},
    }
    stored = redact_body(body)
    assert stored["order_id"] == "o-1" and stored["order_status"] == "paid"
    assert stored["Product"] == {"product_name": "Curso", "product_id": "p-1"}
    assert stored["trans_items[0][item_value]"] == 5
    assert stored["items"] == [{"item_value": 5, "nota": "[REDACTED]"}]
    assert stored["TrackingParameters"] == {"utm_content": "[EMAIL]", "sck": "ta0123456789"}
    for key in ("whatsapp", "apelido", "obs"):
        assert stored[key] == "[REDACTED]"
    assert stored["buyer_nickname"] is None


def test_conversion_carries_no_plaintext() -> None:
    for name, gateway in [("kiwify-3.json", "kiwify"), ("perfectpay-1.json", "perfectpay"),
                          ("hotmart-3.json", "hotmart"), ("cakto-1.json", "cakto")]:  # fmt: skip
        conversion: Conversion = _accept(gateway, fixture_json(name)).conversion
        dumped = repr(conversion)
        assert [value for value in PLAINTEXT if value in dumped] == []
