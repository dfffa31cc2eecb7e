"""What each gateway gives Meta beyond e-mail and phone (issue 15): birth date and gender, renewals
(``action_source``), whole click ids, the buyer's country only where the gateway is Brazil-only."""

from __future__ import annotations

from typing import Any

import pytest

from trackai_ingestion.domain.gateways import ADAPTERS
from trackai_ingestion.domain.model import Accept, Conversion

from ..conftest import fixture_json, sha256_text

FBCLID_300 = "IwAR" + "aB3_-x" * 49 + "Zz"  # 300 characters, case preserved


def _conversion(gateway: str, body: dict[str, Any]) -> Conversion:
    result = ADAPTERS[gateway].interpret(body)
    assert isinstance(result, Accept), result
    return result.conversion


def test_perfectpay_birthday_and_gender_are_hashed_as_meta_specifies() -> None:
    body = fixture_json("perfectpay-1.json")
    body["customer"]["gender"] = "Feminino"
    user = _conversion("perfectpay", body).user_data
    assert user.db == sha256_text("19910101")  # "1991-01-01"
    assert user.ge == sha256_text("f")
    body["customer"].update(birthday="16/02/1997", date_birth=None, gender=None, sex="M")
    user = _conversion("perfectpay", body).user_data
    assert user.db == sha256_text("19970216")
    assert user.ge == sha256_text("m")


@pytest.mark.parametrize(
    ("gateway", "fixture", "path", "value", "renewal"),
    [
        ("perfectpay", "perfectpay-1.json", ("subscription", "charges_made"), 1, False),
        ("perfectpay", "perfectpay-1.json", ("subscription", "charges_made"), 2, True),
        ("hotmart", "hotmart-3.json", ("data", "purchase", "recurrence_number"), 1, False),
        ("hotmart", "hotmart-3.json", ("data", "purchase", "recurrence_number"), 3, True),
        ("kiwify", "kiwify-3.json", ("webhook_event_type",), "order_approved", False),
        ("kiwify", "kiwify-3.json", ("webhook_event_type",), "subscription_renewed", True),
    ],
)
def test_renewals_are_told_from_checkout_purchases(
    gateway: str, fixture: str, path: tuple[str, ...], value: object, renewal: bool
) -> None:
    body = fixture_json(fixture)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert _conversion(gateway, body).renewal is renewal


def test_checkout_urls_are_read_whole() -> None:
    assert _conversion("ticto", fixture_json("ticto-1.json")).checkout_url == (
        "https://checkout.ticto.app/O84ABA07F"
    )
    assert _conversion("kiwify", fixture_json("kiwify-3.json")).checkout_url == (
        "https://pay.kiwify.com.br/LuSveVz"
    )


@pytest.mark.parametrize(
    ("field", "value", "kept"),
    [
        ("fbclid", FBCLID_300, True),  # past the old 200-character cut: kept whole
        ("fbclid", "A" * 500, True),  # the documented limit
        ("fbclid", "A" * 501, False),  # refused, never cut
        ("fbclid", "has.a.dot", False),
        ("fbc", f"fb.1.1700000000000.{FBCLID_300}", True),
        ("fbc", f"fb.1.1700000000000.{FBCLID_300}.AQAB", True),  # appendix passed through
        ("fbc", "fb.1.1700000000000." + "A" * 501, False),
        ("fbc", "not-an-fbc", False),
        ("fbp", "fb.1.1700000000000.1234567890", True),
        ("fbp", "fb.1.1700000000000.abc", False),
        ("fbclid", "null", False),
    ],
)
def test_click_ids_are_kept_whole_or_refused(field: str, value: str, kept: bool) -> None:
    body = fixture_json("perfectpay-1.json")
    body["metadata"]["_fbc" if field == "fbc" else field] = value
    tracking = _conversion("perfectpay", body).tracking
    assert getattr(tracking, field) == (value if kept else None)


def test_brazil_only_gateways_assume_brazil_international_ones_do_not() -> None:
    # Perfect Pay without a country: Brazilian, the national phone read as such.
    body = fixture_json("perfectpay-1.json")
    body["customer"]["country"] = ""
    user = _conversion("perfectpay", body).user_data
    assert user.country == sha256_text("br")
    assert user.ph == sha256_text("5531900000000")
    # Hotmart sells worldwide: no country, no national phone guessed as Brazilian.
    body = fixture_json("hotmart-3.json")
    buyer = body["data"]["buyer"]
    buyer.pop("address", None)
    buyer["checkout_phone"] = "(650) 555-1212"
    buyer.pop("checkout_phone_code", None)
    checkout_country = body["data"]["purchase"].pop("checkout_country")
    user = _conversion("hotmart", body).user_data
    assert user.country is None
    assert user.ph is None
    # The country the checkout was shown in stands in for the buyer's address.
    body["data"]["purchase"]["checkout_country"] = checkout_country
    assert _conversion("hotmart", body).user_data.country == sha256_text("br")
    del body["data"]["purchase"]["checkout_country"]
    # With the buyer's country the same number reads right.
    buyer["address"] = {"country_iso": "US"}
    user = _conversion("hotmart", body).user_data
    assert user.country == sha256_text("us")
    assert user.ph == sha256_text("16505551212")


def test_ticto_foreign_buyer_country_is_read_from_its_name() -> None:
    body = fixture_json("ticto-1.json")
    customer = body["customer"]
    customer["is_foreign"] = True
    customer.setdefault("address", {})["country"] = "Portugal"
    assert _conversion("ticto", body).user_data.country == sha256_text("pt")
