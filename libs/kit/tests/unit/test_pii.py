"""PII normalisation and hashing against Meta's published vectors and Brazilian real-world inputs."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from trackai_kit import pii


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Meta's own examples (Conversions API, customer information parameters page).
META_VECTORS = [
    (
        "em",
        "John_Smith@gmail.com",
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f",
    ),
    ("fn", "Mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
    ("fn", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"),
    ("fn", "Valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
]


@pytest.mark.parametrize(("key", "value", "digest"), META_VECTORS)
def test_metas_published_vectors(key: pii.MatchKey, value: str, digest: str) -> None:
    assert pii.hash_value(key, value) == digest


def test_metas_us_phone_vector() -> None:
    assert pii.normalize_phone("(650)555-1212", default_region="US") == "16505551212"
    assert (
        pii.hash_value("ph", "(650)555-1212", default_region="US")
        == "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    )


def test_decomposed_accents_hash_like_composed_ones() -> None:
    assert pii.hash_value("fn", "Vale\u0301ry") == pii.hash_value("fn", "Valéry")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  Maria.Silva@Example.COM ", "maria.silva@example.com"),
        ("joao+promo@uol.com.br", "joao+promo@uol.com.br"),
        ("not-an-email", None),
        ("a@b", None),
        ("a b@example.com", None),
        ("", None),
        (None, None),
    ],
)
def test_email(raw: str | None, normalized: str | None) -> None:
    assert pii.normalize_email(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+55 11 98765-4321", "5511987654321"),  # Kiwify Customer.mobile style
        ("(11) 98765-4321", "5511987654321"),  # national, Brazil by default
        ("11987654321", "5511987654321"),
        ("5511987654321", "5511987654321"),  # Perfect Pay: extension + area + number
        ("0055 11 98765 4321", "5511987654321"),  # international 00 prefix
        ("011 98765-4321", "5511987654321"),  # trunk prefix 0
        ("(21) 3333-4444", "552133334444"),  # landline
        ("+1 650 555 1212", "16505551212"),  # foreign number with its country code
        ("+351 912 345 678", "351912345678"),
        ("(00) 00000-0000", None),  # placeholder
        ("987654321", None),  # no area code
        ("abc", None),
        ("+", None),
        ("", None),
        (None, None),
    ],
)
def test_phone_brazil_default(raw: str | None, normalized: str | None) -> None:
    assert pii.normalize_phone(raw) == normalized


def test_invalid_phone_hashes_to_none_without_raising() -> None:
    assert pii.phone_hash("12") is None
    assert pii.phone_hash("☎ call me") is None


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Mary", "mary"),
        ("  JOÃO ", "joão"),
        ("O'Brien", "obrien"),
        ("Mary-Jane  Watson", "maryjane watson"),
        ("Dr. José!", "dr josé"),
        ("...", None),
    ],
)
def test_names(raw: str, normalized: str | None) -> None:
    assert pii.normalize_name(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("São Paulo", "sãopaulo"),
        ("Menlo Park", "menlopark"),
        ("Rio de Janeiro - RJ", "riodejaneirorj"),
    ],
)
def test_city(raw: str, normalized: str) -> None:
    assert pii.normalize_city(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "country", "normalized"),
    [
        ("SP", None, "sp"),
        ("São Paulo", None, "sp"),
        ("sao paulo", "BR", "sp"),
        ("Rio Grande do Sul", "br", "rs"),
        ("CA", "US", "ca"),
        ("Bavaria", "DE", "bavaria"),
        ("!!", None, None),
    ],
)
def test_state(raw: str, country: str | None, normalized: str | None) -> None:
    assert pii.normalize_state(raw, country) == normalized


@pytest.mark.parametrize(
    ("raw", "country", "normalized"),
    [
        ("01310-100", None, "01310100"),  # CEP recognised without a country
        ("01310100", "BR", "01310100"),
        ("0131", "BR", None),
        ("94025-1234", "US", "94025"),
        ("94025", "us", "94025"),
        ("SW1A 1AA", "GB", "sw1a1aa"),
    ],
)
def test_zip(raw: str, country: str | None, normalized: str | None) -> None:
    assert pii.normalize_zip(raw, country) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("BR", "br"), (" us ", "us"), ("Brasil", "br"), ("XX", None), ("Brazilian", None)],
)
def test_country(raw: str, normalized: str | None) -> None:
    assert pii.normalize_country(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("19970216", "19970216"),
        ("1997-02-16", "19970216"),
        ("16/02/1997", "19970216"),  # Brazilian day-first
        (dt.date(1997, 2, 16), "19970216"),
        ("31/02/1997", None),
        ("1850-01-01", None),
        ("yesterday", None),
    ],
)
def test_birth_date(raw: object, normalized: str | None) -> None:
    assert pii.normalize_birth_date(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("F", "f"), ("Feminino", "f"), ("male", "m"), ("masculino", "m"), ("x", None)],
)
def test_gender(raw: str, normalized: str | None) -> None:
    assert pii.normalize_gender(raw) == normalized


def test_external_id_is_trimmed_and_lowercased() -> None:
    assert pii.normalize_external_id("  ABC-123 ") == "abc-123"


def test_an_existing_digest_is_never_hashed_again() -> None:
    digest = sha("maria@example.com")
    assert pii.hash_value("em", digest) == digest
    assert pii.hash_value("ph", digest.upper()) == digest
    assert pii.email_hash(f"  {digest} ") == digest
    assert pii.hash_user_data({"em": digest, "fn": digest}) == {"em": digest, "fn": digest}


def test_column_helpers_produce_lowercase_hex() -> None:
    em = pii.email_hash(" Maria@Example.com")
    ph = pii.phone_hash("(11) 98765-4321")
    assert em == sha("maria@example.com")
    assert ph == sha("5511987654321")
    assert em is not None and pii.is_sha256_hex(em)
    assert pii.email_hash("garbage") is None


def test_user_data_uses_the_country_for_phone_and_postal_code() -> None:
    hashed = pii.hash_user_data(
        {
            "em": "A@B.com",
            "ph": "(650) 555-1212",
            "zp": "94025-1234",
            "country": "US",
            "st": "CA",
            "ge": "unknown",
            "cpf": "123.456.789-09",
        }
    )
    assert hashed == {
        "em": sha("a@b.com"),
        "ph": sha("16505551212"),
        "zp": sha("94025"),
        "country": sha("us"),
        "st": sha("ca"),
    }


def test_user_data_defaults_to_brazil() -> None:
    hashed = pii.hash_user_data({"ph": "(11) 98765-4321", "zp": "01310-100", "st": "São Paulo"})
    assert hashed == {"ph": sha("5511987654321"), "zp": sha("01310100"), "st": sha("sp")}


def test_is_sha256_hex_demands_lowercase() -> None:
    digest = sha("x")
    assert pii.is_sha256_hex(digest)
    assert not pii.is_sha256_hex(digest.upper())
    assert not pii.is_sha256_hex(digest[:-1])
