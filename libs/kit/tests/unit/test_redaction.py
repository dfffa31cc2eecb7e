"""The redactor removes personal data and secrets and leaves ids, hashes and numbers alone."""

from __future__ import annotations

import json

import pytest

from trackai_kit.logging import redact
from trackai_kit.redaction import REDACTED, is_sensitive_key, redact_text


@pytest.mark.parametrize(
    "text",
    [
        "contact maria.silva+promo@example.com.br now",
        "phone +55 11 91234-5678 given",
        "phone (11) 91234-5678 given",
        "phone 11 91234 5678 given",
        "phone 5511912345678 given",
        "phone +5511912345678 given",
        "phone +1 415-555-2671 given",
        "phone 11912345678 given",
        "cpf 123.456.789-09 given",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def-ghi",
        "GET /hook?token=s3cr3tv4lue&x=1",
        "hottok=AbC123xyz",
        "access_token: EAAB123secret",
    ],
)
def test_free_text_loses_personal_data_and_secrets(text: str) -> None:
    out = redact_text(text)
    for secret in (
        "maria.silva",
        "91234",
        "912345678",
        "555-2671",
        "123.456.789",
        "eyJhbGciOiJIUzI1NiJ9",
        "s3cr3tv4lue",
        "AbC123xyz",
        "EAAB123secret",
    ):
        assert secret not in out, out


@pytest.mark.parametrize(
    "text",
    [
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "event 123e4567-e89b-12d3-a456-426614174000",
        "sha e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "at 2024-05-01T12:34:56.123456+00:00",
        "order 12345 took 350 ms",
        "v1.2.3",
    ],
)
def test_ids_hashes_and_dates_are_kept(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "Authorization",
        "X-Api-Key",
        "apiKey",
        "accessToken",
        "GRPC_CLIENT_TOKEN",
        "client_secret",
        "hottok",
        "signature",
        "password",
        "email",
        "phone",
        "cpf",
        "webhook_secret",
        "X-Hub-Signature-256",
        "X-Hotmart-Hottok",
        "metaAccessToken",
        "Set-Cookie",
        "private_key",
        "name",
        "full_name",
        "firstName",
        "nome",
        "sobrenome",
        "street_name",
        "zip_code",
        "cep",
        "birthday",
        "chave_unica",
        "basic_authentication",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "email_hash",
        "phone_hash",
        "event_id",
        "tenant_id",
        "status",
        "prompt_tokens",
        "funnel_name",
        "logger",
    ],
)
def test_ordinary_keys(key: str) -> None:
    assert not is_sensitive_key(key)


def test_redact_is_recursive_and_keeps_structure() -> None:
    value = {
        "tenant_id": "t-1",
        "count": 12345678901,
        "email_hash": "ab" * 32,
        "customer": {"email": "a@b.co", "Phone": "11 91234-5678", "name": "Ana"},
        "items": [{"note": "call me at +55 (21) 98765-4321"}, ("x@y.io", 3)],
        "headers": {"Authorization": "Bearer abc", "X-Hotmart-Hottok": "zzz"},
        "raw": b"email=a@b.co",
    }
    out = redact(value)
    assert isinstance(out, dict)
    assert out["tenant_id"] == "t-1"
    assert out["count"] == 12345678901  # numbers are not text; left alone
    assert out["email_hash"] == "ab" * 32
    assert out["customer"] == {"email": REDACTED, "Phone": REDACTED, "name": REDACTED}
    assert out["items"][0] == {"note": "call me at [PHONE]"}
    assert out["items"][1] == ("[EMAIL]", 3)
    assert out["headers"] == {"Authorization": REDACTED, "X-Hotmart-Hottok": REDACTED}
    assert out["raw"] == "<12 bytes>"
    dumped = json.dumps(out)
    for leaked in ("a@b.co", "91234", "98765", "abc", "zzz"):
        assert leaked not in dumped
    # the input is not modified
    assert value["customer"]["email"] == "a@b.co"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        # CPF and phone spellings seen in gateway payloads and support tickets.
        ("cpf 123 456 789 09 given", "456 789"),
        ("cpf 123456789-09 given", "456789"),
        ("cpf 123-456-789-09 given", "456-789"),
        ("cnpj 12.345.678/0001-90 given", "345.678"),
        ("phone +55 11 9 1234-5678 given", "1234-5678"),
        ("phone 11 9 1234 5678 given", "1234 5678"),
        ("phone (11) 9 1234-5678 given", "1234-5678"),
        ("phone +55 (11) 91234 5678 given", "91234"),
        ("phone 912345678 given", "912345678"),
        ("ligue 91234-5678", "91234"),
        # Quoted values after a credential or person key: a protobuf's text form, a repr, JSON.
        ('gateways {\n  gateway: "perfectpay"\n  secret: "pp tok 123"\n}', "pp tok 123"),
        ('signing_secret: "abc def"', "abc def"),
        ('meta { access_token: "EAAG123" pixel_id: "1" }', "EAAG123"),
        ("{'hottok': 'HotTok-99', 'x': 1}", "HotTok-99"),
        ('{"token": "t-1 2", "n": 1}', "t-1 2"),
        ("X-Hotmart-Hottok: abc123", "abc123"),
        ("{'full_name': 'Maria Aparecida Souza'}", "Aparecida"),
        ('customer { name: "Maria Souza" }', "Maria"),
        ('{"nome": "João da Silva"}', "João"),
        ("first_name=Maria&utm=x", "Maria"),
        # Street addresses.
        ("entrega na Rua das Flores, 123 apto 4", "Flores"),
        ("Av. Paulista 1000", "Paulista"),
        ("endereço: Rua 1001", "Rua 1001"),
    ],
)
def test_more_spellings_of_personal_data_and_secrets(text: str, gone: str) -> None:
    out = redact_text(text)
    assert gone not in out, out


@pytest.mark.parametrize(
    "text",
    [
        "client 192.168.100.12 refused",
        "prompt_tokens: 12",
        "funnel_name: launch",
        "filename: app.py",
        "took 1234 ms",
    ],
)
def test_lookalikes_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_shortest_formatted_phone_is_redacted() -> None:
    # Nine digits is the fewest the formatted-phone pattern matches: the pre-screen must let it in.
    assert "234-5678" not in redact_text("call (11) 234-5678 today")
    assert "234" not in redact_text("ligar 11 234 5678")


@pytest.mark.parametrize("seed", range(4))
def test_prescreen_never_changes_the_result(seed: int) -> None:
    """The cheap check that skips the patterns must agree with running them, on text built to sit
    at its edges: digit counts around 9-13, separators, "@", secret words, non-ASCII digits."""
    import random

    from trackai_kit.redaction import _apply_patterns

    rng = random.Random(seed)
    pieces = [
        *"0123456789",
        *"0123456789",
        " ",
        "-",
        ".",
        "(",
        ")",
        "+",
        "/",
        "@",
        "a",
        "Z",
        "_",
        "=",
        ":",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: \d matches it
        "é",
        "\u017fecret=",  # LATIN SMALL LETTER LONG S: "secret" to a case-insensitive pattern
        "\u212aey",  # KELVIN SIGN: a "k" to a case-insensitive pattern
        "Hottok=",
        "token",
        "Bearer ",
        "basic ",
        "apikey",
        "api_key",
        "hottok",
        "Secret",
        "signature",
        "password",
        "name: ",
        "'nome': '",
        '"',
        "Rua ",
        "av. ",
        ",",
        "x.com",
        ".br",
    ]
    for _ in range(4000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        assert redact_text(text) == _apply_patterns(text), text


def test_pixel_ids_are_kept_but_a_phone_under_another_key_is_not() -> None:
    line = {
        "pixel_id": "1234567890",
        "datasetId": "123456789012345",
        "note": "1234567890",
        "phone_hint": "5511912345678",
    }
    assert redact(line) == {
        "pixel_id": "1234567890",
        "datasetId": "123456789012345",
        "note": "[PHONE]",
        "phone_hint": "[PHONE]",
    }
    # Only an all-digit value is an id: anything else under the key is redacted as usual.
    assert redact({"pixel_id": "ana@example.com"}) == {"pixel_id": "[EMAIL]"}
