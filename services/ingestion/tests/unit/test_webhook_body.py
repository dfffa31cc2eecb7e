"""The hardened parse step of webhook bodies, and the adapters' shared shape and time checks:
every malformed input is a MalformedBody (400) or an InvalidPayload (422) naming the place, never
another exception."""

from __future__ import annotations

import codecs
import json
from decimal import Decimal
from typing import Any

import pytest

from trackai_ingestion.domain.gateways import ADAPTERS, WebhookRequest
from trackai_ingestion.domain.gateways.body import MAX_DEPTH, parse_json_object
from trackai_ingestion.domain.model import AuthenticationFailed, InvalidPayload, MalformedBody

from ..conftest import fixture_bytes, fixture_json, hmac_hex

NESTED_2000 = b"[" * 2000 + b"]" * 2000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (NESTED_2000, "nested more than"),
        (b'{"a": ' + NESTED_2000 + b"}", "nested more than"),
        (b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}", "a[0][0]"),
        (b'{"a": ' + b"9" * 5000 + b"}", "body: a number has more than 40 digits"),
        (b'{"a": [' + b"9" * 41 + b"]}", "a[0]: a number has more than 40 digits"),
        (b'{"a": -' + b"9" * 41 + b"}", "a: a number has more than 40 digits"),
        (b'{"a": {"b": 1e999}}', "a.b: the number '1e999' is out of range"),
        (b'{"a": [1, -1E-999]}', "a[1]: the number"),
        (b'{"a": NaN}', "a: the number 'NaN' is not a finite number"),
        (b'{"a": [Infinity]}', "a[0]: the number 'Infinity'"),
        (b'{"a": -Infinity}', "a: the number '-Infinity'"),
        (b'{"a": "x\\u0000y"}', "a: contains a NUL character"),
        (b'{"a": {"b": ["\\ud800"]}}', "a.b[0]: contains a lone UTF-16 surrogate"),
        (b'{"a": "\\udfff\\ud800"}', "a: contains a lone UTF-16 surrogate"),
        (b'{"\\u0000": 1}', "body: a key contains a NUL character"),
        (b'{"a": {"\\ud800": 1}}', "a: a key contains a lone UTF-16 surrogate"),
        (b'{"token": "wrong", "token": "right"}', "body: key 'token' appears more than once"),
        (b'{"a": [{"b": 1, "b": 1}]}', "a[0]: key 'b' appears more than once"),
        ('{"a": 1}'.encode("utf-16"), "NUL bytes"),
        ('{"a": 1}'.encode("utf-16-le"), "NUL bytes"),
        ('{"a": 1}'.encode("utf-32"), "NUL bytes"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as UTF-8 bytes (CESU)
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[1]", "must be a JSON object, got a JSON list"),
        (b"NaN", "must be a JSON object, got a JSON number"),
        (b'"\\u0000"', "must be a JSON object, got a JSON str"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_place(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_json_object(raw)
    assert message in str(caught.value)
    # Safe to answer and to store: ASCII, short, no control character.
    assert str(caught.value).isascii() and str(caught.value).isprintable()
    assert len(str(caught.value)) < 300


def test_good_bodies_parse_exactly() -> None:
    raw = b'{"a": 1.10, "b": 12345678901234567890, "c": "\\ud83d\\ude00 \\\\u0000", "d": [true]}'
    assert parse_json_object(raw) == {
        "a": Decimal("1.10"),
        "b": 12345678901234567890,
        "c": "\U0001f600 \\u0000",
        "d": [True],
    }


def test_a_utf8_bom_is_ignored() -> None:
    assert parse_json_object(codecs.BOM_UTF8 + b'{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("name", ["kiwify-3.json", "perfectpay-1.json", "hotmart-3.json"])
def test_every_fixture_passes_the_parse_step(name: str) -> None:
    assert parse_json_object(fixture_bytes(name)) == json.loads(
        fixture_bytes(name), parse_float=Decimal
    )


def test_request_body_raises_only_malformed_body_and_parses_once() -> None:
    request = WebhookRequest(NESTED_2000, {})
    for _ in range(2):
        with pytest.raises(MalformedBody):
            _ = request.body


# -- body secrets: odd input is a refusal, never a crash ------------------------------------


@pytest.mark.parametrize("gateway", ["perfectpay", "cakto"])
@pytest.mark.parametrize(
    "raw",
    [
        NESTED_2000,
        b'{"token": "\\ud800", "secret": "\\ud800"}',
        b'{"token": "x\\u0000", "secret": "x\\u0000"}',
        b'{"token": 1e999, "secret": NaN}',
    ],
)
def test_body_secret_gateways_refuse_odd_bodies_as_malformed(gateway: str, raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        ADAPTERS[gateway].authenticate(WebhookRequest(raw, {}), "0123456789abcdef")


@pytest.mark.parametrize(("gateway", "key"), [("perfectpay", "token"), ("cakto", "secret")])
def test_a_repeated_body_secret_is_refused_whatever_the_order(gateway: str, key: str) -> None:
    for first, last in (("wrong", "right"), ("right", "wrong")):
        raw = f'{{"{key}": "{first}", "{key}": "{last}"}}'.encode()
        with pytest.raises(MalformedBody, match=f"key '{key}' appears more than once"):
            ADAPTERS[gateway].authenticate(WebhookRequest(raw, {}), "right")


def test_header_secrets_with_odd_characters_do_not_match() -> None:
    for hottok in ("\udc80", "h\x00ttok", "h\xe9ttok"):
        with pytest.raises(AuthenticationFailed):
            ADAPTERS["hotmart"].authenticate(
                WebhookRequest(b"{}", {"X-HOTMART-HOTTOK": hottok}), "hottok"
            )


# -- repeated signatures ---------------------------------------------------------------------


def test_kiwify_refuses_a_repeated_signature_parameter() -> None:
    raw = fixture_bytes("kiwify-1.json")
    good = hmac_hex("sha1", "key", raw)
    for query in ([("signature", good), ("signature", "0" * 40)], [("signature", good)] * 2):
        with pytest.raises(AuthenticationFailed, match="2 `signature` query parameters"):
            ADAPTERS["kiwify"].authenticate(WebhookRequest(raw, {}, query), "key")
    ADAPTERS["kiwify"].authenticate(WebhookRequest(raw, {}, [("signature", good)]), "key")


def test_eduzz_refuses_several_signatures_but_not_a_relay_signature_beside_its_own() -> None:
    raw = fixture_bytes("eduzz-2.json")
    good = hmac_hex("sha256", "key", raw)
    for value in (f"{'0' * 64}, {good}", f"{good}, {good}"):
        with pytest.raises(AuthenticationFailed, match="2 Eduzz x-signature values"):
            ADAPTERS["eduzz"].authenticate(WebhookRequest(raw, {"x-signature": value}), "key")
    relayed = WebhookRequest(raw, {"x-signature": f"{good}, sha256={'1' * 64}"})
    ADAPTERS["eduzz"].authenticate(relayed, "key")


# -- shapes and times ------------------------------------------------------------------------


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return body


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("perfectpay-1.json", "customer"),
        ("hotmart-3.json", "data.buyer"),
        ("kiwify-3.json", "Customer"),
        ("eduzz-2.json", "data.buyer"),
        ("cakto-1.json", "data.customer"),
    ],
)
@pytest.mark.parametrize("value", ["a buyer", 42, True, [1]])
def test_a_person_block_of_the_wrong_type_is_invalid_naming_it(
    name: str, path: str, value: Any
) -> None:
    gateway = name.split("-", 1)[0]
    body = _set(fixture_json(name), path, value)
    with pytest.raises(InvalidPayload) as caught:
        ADAPTERS[gateway].interpret(body)
    assert caught.value.field == path
    assert "must be an object" in caught.value.detail


@pytest.mark.parametrize("value", [None, "", []])
def test_an_absent_person_block_is_empty(value: Any) -> None:
    body = _set(fixture_json("perfectpay-1.json"), "customer", value)
    ADAPTERS["perfectpay"].interpret(body)


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("perfectpay-1.json", "date_approved", "9999-12-31 23:59:59"),
        ("perfectpay-1.json", "date_approved", "0001-01-01 00:00:00"),
        ("kiwify-3.json", "approved_date", "9999-12-31 23:59"),
        ("cakto-1.json", "data.paidAt", "9999-12-31T23:59:59-03:00"),
        ("cakto-1.json", "data.paidAt", "0001-01-01T00:00:00+14:00"),
        ("eduzz-2.json", "data.paidAt", "9999-12-31T23:59:59"),
        ("hotmart-3.json", "data.purchase.approved_date", 253402300799999),
        ("hotmart-3.json", "data.purchase.approved_date", -62135596800000),
    ],
)
def test_out_of_range_times_are_invalid_naming_the_field(name: str, path: str, value: Any) -> None:
    gateway = name.split("-", 1)[0]
    body = _set(fixture_json(name), path, value)
    with pytest.raises(InvalidPayload) as caught:
        ADAPTERS[gateway].interpret(body)
    assert caught.value.field == path
