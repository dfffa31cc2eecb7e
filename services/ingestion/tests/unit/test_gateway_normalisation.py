"""Every real payload of the nine gateways normalises to the right order, status, time and amount."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import qs_codec

from trackai_ingestion.domain.gateways import ADAPTERS, WebhookRequest
from trackai_ingestion.domain.model import (
    Accept,
    CanonicalStatus,
    Conversion,
    Ignore,
    InvalidPayload,
    MalformedBody,
    PaymentMethod,
    Tracking,
)
from trackai_ingestion.domain.redaction import redact_body
from trackai_testing.personal_data import find_leaks, personal_values

from ..conftest import PLAINTEXT, fixture_bytes, fixture_json, sha256_text

#: The webhook secrets inside the Monetizze, Braip and Ticto fixtures.
NEW_BODY_SECRETS = (
    "ffffffffffffffffffffffffffffffff",
    "0000000000000000000000000000000000000000",
    "REDACTED_TICTO_WEBHOOK_TOKEN",
)


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
    # Completa (guarantee over): dataFinalizada 09:33:53 in Brasília; the sale's gross "157.00".
    ("monetizze-1.json", "monetizze", "41852883", CanonicalStatus.COMPLETED,
     _utc(2022, 10, 1, 12, 33, 53), Decimal("157.00"), PaymentMethod.CREDIT_CARD, False),
    # The same postback's form fields without the JSON copy (what the PHP-style keys decode to).
    ("monetizze-2.json", "monetizze", "41852883", CanonicalStatus.COMPLETED,
     _utc(2022, 10, 1, 12, 33, 53), Decimal("157.00"), PaymentMethod.CREDIT_CARD, False),
    # trans_total_value 23790 cents (plan 19790 + bump 4000), not the producer's 22500.
    ("braip-1.json", "braip", "ven33x0wng", CanonicalStatus.APPROVED,
     _utc(2024, 5, 29, 20, 56, 8), Decimal("237.90"), PaymentMethod.BOLETO, False),
    ("ticto-1.json", "ticto", "TOC8C0E11002NKR132S", CanonicalStatus.APPROVED,
     _utc(2024, 2, 10, 22, 19, 17), Decimal("39.90"), PaymentMethod.CREDIT_CARD, False),
    ("greenn-1.json", "greenn", "777777", CanonicalStatus.APPROVED,
     _utc(2025, 11, 4, 23, 0), Decimal("99.9"), PaymentMethod.CREDIT_CARD, False),
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


@pytest.mark.parametrize(
    "name",
    ["monetizze-1.json", "monetizze-2.json", "braip-1.json", "ticto-1.json", "greenn-1.json"],
)
def test_redacted_body_keeps_none_of_the_buyers_values_nor_the_secret(name: str) -> None:
    adapter = ADAPTERS[name.split("-", maxsplit=1)[0]]
    # What is stored: the parsed body (Monetizze's JSON copy, not the form around it).
    body = adapter.parse(_request(fixture_bytes(name), "application/json"))
    stored = json.dumps(redact_body(body), ensure_ascii=False)
    assert find_leaks(personal_values(fixture_json(name)), stored) == []
    assert [secret for secret in NEW_BODY_SECRETS if secret in stored] == []


def test_conversion_carries_no_plaintext() -> None:
    for name, gateway in [("kiwify-3.json", "kiwify"), ("perfectpay-1.json", "perfectpay"),
                          ("hotmart-3.json", "hotmart"), ("cakto-1.json", "cakto")]:  # fmt: skip
        conversion: Conversion = _accept(gateway, fixture_json(name)).conversion
        dumped = repr(conversion)
        assert [value for value in PLAINTEXT if value in dumped] == []


# -- Monetizze, Braip, Ticto, Greenn -----------------------------------------------------------


def _request(raw: bytes, content_type: str) -> WebhookRequest:
    return WebhookRequest(raw, {"Content-Type": content_type})


def _form(body: dict[str, Any]) -> bytes:
    """``body`` as Monetizze posts it: PHP-style keys, form-encoded."""
    return qs_codec.encode(body, qs_codec.EncodeOptions(encode_values_only=False)).encode()


def _monetizze(raw: bytes, content_type: str) -> Accept | Ignore:
    adapter = ADAPTERS["monetizze"]
    return adapter.interpret(adapter.parse(_request(raw, content_type)))


def test_monetizze_form_and_json_encodings_read_the_same() -> None:
    body = fixture_json("monetizze-1.json")
    without_copy = {key: value for key, value in body.items() if key != "json"}
    as_json = _monetizze(json.dumps(body).encode(), "application/json")
    as_form = _monetizze(_form(body), "application/x-www-form-urlencoded")
    # PHP-style keys only (no JSON copy): the real form parser builds the same nesting.
    as_php_keys = _monetizze(_form(without_copy), "application/x-www-form-urlencoded")
    assert b"venda%5Bcodigo%5D=41852883" in _form(without_copy)
    assert isinstance(as_json, Accept)
    assert as_json == as_form == as_php_keys
    assert as_json.conversion.product_name == "Lift Detox Caps"
    assert as_json.conversion.user_data.em == sha256_text("buyer@example.com")
    assert as_json.conversion.user_data.ph == sha256_text("5527900000000")
    assert as_json.conversion.user_data.ct == sha256_text("novavenécia")
    assert as_json.conversion.user_data.st == sha256_text("es")


def test_monetizze_prefers_the_json_copy() -> None:
    body = fixture_json("monetizze-1.json")
    form_fields = dict(body, venda=dict(body["venda"], valor="999.00"))
    result = _monetizze(_form(form_fields), "application/x-www-form-urlencoded")
    assert isinstance(result, Accept) and result.conversion.amount == Decimal("157.00")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe=1", "not UTF-8"),
        (b"a" + b"[x]" * 20 + b"=1", "cannot be read"),
        (b"json=%7Bnot+json", "the `json` field"),
        (b"venda%5Bcodigo%5D=1%00", "NUL"),
        (b"json=%7B%22a%22%3A1%2C%22a%22%3A2%7D", "appears more than once"),
    ],
)
def test_monetizze_malformed_forms_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedBody, match=message):
        ADAPTERS["monetizze"].parse(_request(raw, "application/x-www-form-urlencoded"))


def test_monetizze_approved_sale_in_brazilian_number_form() -> None:
    body = fixture_json("monetizze-1.json")
    del body["json"]
    body["codigo_status"] = "2"
    body["venda"] = dict(body["venda"], valor="1.234,56", src="taAbCdEfGhIjKlMnOpQrSt")
    conversion = _accept("monetizze", body).conversion
    assert conversion.status is CanonicalStatus.APPROVED
    assert conversion.amount == Decimal("1234.56")
    assert conversion.tracking.src == "taAbCdEfGhIjKlMnOpQrSt"
    pending = _accept("monetizze", dict(body, codigo_status="1")).conversion
    # A pending boleto/pix happened when the sale started (dataInicio 09:33:48 in Brasília).
    assert pending.event_time == _utc(2022, 10, 1, 12, 33, 48)


def test_monetizze_each_recipients_postback_is_the_same_sale() -> None:
    producer = fixture_json("monetizze-1.json")
    del producer["json"]
    affiliate = dict(
        producer,
        tipoPostback={"codigo": 1, "descricao": "Afiliado"},
        venda=dict(producer["venda"], valorRecebido="65.33"),
    )
    first, second = (_accept("monetizze", b).conversion for b in (producer, affiliate))
    assert first == second


def test_braip_tracking_phone_and_gross_value() -> None:
    conversion = _accept("braip", fixture_json("braip-1.json")).conversion
    assert conversion.tracking.src == "facediego"
    assert conversion.tracking.fbclid is not None and conversion.tracking.fbclid.startswith("IwAR")
    assert conversion.tracking.utm["utm_campaign"] == "240400"
    assert conversion.tracking.extra == {"utm_id": "120209683485600119"}
    assert conversion.user_data.em == sha256_text("buyer@example.com")
    assert conversion.user_data.ph == sha256_text("5555900000000")
    assert conversion.user_data.zp == sha256_text("98800000")
    # Each commission recipient's postback carries the same sale: same conversion.
    affiliate = dict(fixture_json("braip-1.json"), postback_type="Afiliado")
    assert _accept("braip", affiliate).conversion == conversion


def test_ticto_not_informed_is_empty_and_tracking_read() -> None:
    conversion = _accept("ticto", fixture_json("ticto-1.json")).conversion
    assert conversion.tracking == Tracking()
    assert conversion.user_data.ph == sha256_text("5521900000000")
    assert conversion.user_data.country == sha256_text("br")
    body = fixture_json("ticto-1.json")
    body["tracking"] = dict(body["tracking"], sck="taAbCdEfGhIjKlMnOpQrSt", utm_source="fb")
    tracked = _accept("ticto", body).conversion.tracking
    assert (tracked.sck, tracked.src, tracked.utm) == (
        "taAbCdEfGhIjKlMnOpQrSt",
        None,
        {"utm_source": "fb"},
    )


def test_greenn_sale_metas_are_tracking() -> None:
    body = fixture_json("greenn-1.json")
    body["saleMetas"] = [
        {"meta_key": "src", "meta_value": "taAbCdEfGhIjKlMnOpQrSt"},
        {"meta_key": "utm_source", "meta_value": "facebook"},
        {"unexpected": "shape"},
        "not an object",
    ]
    conversion = _accept("greenn", body).conversion
    assert conversion.tracking.src == "taAbCdEfGhIjKlMnOpQrSt"
    assert conversion.tracking.utm == {"utm_source": "facebook"}
    assert conversion.user_data.em == sha256_text("joao@example.com")
    assert conversion.user_data.ph == sha256_text("5511988888888")


@pytest.mark.parametrize(
    ("gateway", "change", "reason"),
    [
        ("monetizze", {"codigo_status": "5"}, "codigo_status '5'"),
        ("monetizze", {"codigo_status": "42"}, "codigo_status '42'"),
        ("braip", {"trans_status": "Em Análise"}, "Em Análise"),
        ("braip", {"type": "CODIGO_RASTREIO"}, "CODIGO_RASTREIO"),
        ("ticto", {"status": "trial"}, "trial"),
        ("greenn", {"currentStatus": "trialing"}, "trialing"),
        ("greenn", {"type": "contract"}, "contract"),
    ],
)
def test_new_gateways_ignore_unknown_statuses_with_a_reason(
    gateway: str, change: dict[str, str], reason: str
) -> None:
    body = dict(fixture_json(f"{gateway}-1.json"), **change)
    body.pop("json", None)
    result = ADAPTERS[gateway].interpret(body)
    assert isinstance(result, Ignore)
    assert reason in result.reason and result.order_id


@pytest.mark.parametrize(
    ("gateway", "mutate", "field"),
    [
        ("monetizze", lambda b: b["venda"].update(valor="12,3,4"), "venda.valor"),
        ("monetizze", lambda b: b["venda"].update(dataFinalizada="01/10/2022"), "venda.dataFinalizada"),
        ("braip", lambda b: b.pop("trans_key"), "trans_key"),
        ("braip", lambda b: b.update(trans_total_value=10.5), "trans_total_value"),
        ("ticto", lambda b: b["order"].update(paid_amount="abc"), "order.paid_amount"),
        ("ticto", lambda b: b.update(status_date="ontem"), "status_date"),
        ("greenn", lambda b: b["sale"].pop("id"), "sale.id"),
        ("greenn", lambda b: b["sale"].update(amount=-5), "sale.amount"),
    ],
)  # fmt: skip
def test_new_gateways_name_bad_fields(gateway: str, mutate: Any, field: str) -> None:
    body = fixture_json(f"{gateway}-1.json")
    body.pop("json", None)
    mutate(body)
    with pytest.raises(InvalidPayload) as caught:
        ADAPTERS[gateway].interpret(body)
    assert caught.value.field == field
