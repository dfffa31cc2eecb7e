"""The plaintext-PII search the leak tests share: values come from every fixture's personal fields,
and a leak is found in each form it takes (raw, lower-cased, JSON-escaped, URL-encoded, digits)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from trackai_testing.personal_data import find_leaks, personal_values

FIXTURES = Path(__file__).resolve().parents[2] / "services/ingestion/tests/fixtures/gateways"


def _values(name: str) -> set[str]:
    return personal_values(json.loads((FIXTURES / name).read_text()))


@pytest.mark.parametrize(
    ("fixture", "value"),
    [
        ("hotmart-3.json", "12345678900"),  # CPF
        ("kiwify-4.json", "30574187242"),  # CPF
        ("eduzz-2.json", "12345678901"),  # CPF
        ("kiwify-4.json", "(11) 99999-9999"),  # formatted phone
        ("perfectpay-3.json", "(16) 90000-0000"),  # formatted phone
        ("hotmart-3.json", "Kaique"),  # first name on its own
        ("hotmart-3.json", "Garcia"),  # last name on its own
        ("hotmart-3.json", "Avenida Paulista"),  # street address
        ("perfectpay-1.json", "1991-01-01"),  # birth date
    ],
)
def test_values_come_from_the_fixtures_personal_fields(fixture: str, value: str) -> None:
    assert value in _values(fixture)


def test_products_sellers_and_commissions_are_not_taken_for_the_buyer() -> None:
    values = _values("hotmart-1.json") | _values("kiwify-1.json") | _values("eduzz-1.json")
    assert not values & {"Produto test postback2", "Producer Test Name", "Example store",
                         "support@hotmart.com.br", "qa-orbita@eduzz.com", "Nome do produto"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ('{"name": "Jo\\u00e3o Silva"}', "json-escaped"),  # JSON logs escape non-ASCII
        ("buyer: JOÃO SILVA", "raw"),  # case-insensitive
        (f"GET /?n={quote('João Silva')}", "url-encoded"),
        ("name=Jo%C3%A3o+Silva", "form-encoded"),
    ],
)
def test_a_leak_is_found_in_every_form(text: str, form: str) -> None:
    leaks = find_leaks(_values("eduzz-2.json"), text)
    assert ("João Silva", form) in [(leak.value, leak.form) for leak in leaks]
    assert "Silva" in [leak.value for leak in leaks]  # the last name on its own too


def test_a_phone_leaked_as_digits_is_found() -> None:
    leaks = find_leaks(_values("kiwify-4.json"), "phone=11999999999")
    assert [leak.value for leak in leaks] == ["11999999999"]


def test_text_without_personal_data_has_no_leak() -> None:
    every = set().union(*(_values(p.name) for p in FIXTURES.glob("*.json")))
    clean = '{"event": "accepted", "tenant": "loja-ana", "em": "' + "a" * 64 + '"}'
    assert find_leaks(every, clean) == []
