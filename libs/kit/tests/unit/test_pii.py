"""PII normalisation and hashing against Meta's published vectors and Brazilian real-world inputs."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from trackai_kit import pii
from trackai_kit.addresses import public_ip


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Meta's seven published examples (Conversions API, customer information parameters page): the
# input as Meta writes it, with the buyer's country where Meta gives one (the phone is "a US phone
# number"), through the same entry point ingestion uses.
META_VECTORS = [
    (
        "em",
        "John_Smith@gmail.com",
        None,
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f",
    ),
    (
        "ph",
        "(650)555-1212",
        "US",
        "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176",
    ),
    ("fn", "Mary", None, "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
    ("fn", "정", None, "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"),
    ("fn", "Valéry", None, "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
    # "2/16/1997" -> 19970216 (month first: it reads only one way).
    ("db", "2/16/1997", None, sha("19970216")),
    # "f" for female.
    ("ge", "Female", None, "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
]


@pytest.mark.parametrize(("key", "value", "country", "digest"), META_VECTORS)
def test_metas_published_vectors(
    key: pii.MatchKey, value: str, country: str | None, digest: str
) -> None:
    fields = {key: value, "country": country} if country else {key: value}
    assert pii.hash_user_data(fields)[key] == digest


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
        ("(11) 98765-4321 (whatsapp)", "5511987654321"),  # remark after the number
        ("11 98765-4321 WhatsApp", "5511987654321"),
        ("+55 11 3333-4444 ramal 12", "551133334444"),  # extension dropped, not appended
        ("(21) 3333-4444 r. 5", "552133334444"),
        ("+1 650 555 1212 ext. 3", "16505551212"),
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


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+351 912 345 678", "351912345678"),
        ("00351 912 345 678", "351912345678"),
        ("447911123456", "447911123456"),  # a valid country code in front
        ("(11) 98765-4321", None),  # national: no country to read it in
        ("(650) 555-1212", None),
    ],
)
def test_phone_without_a_default_country(raw: str, normalized: str | None) -> None:
    assert pii.normalize_phone(raw, default_region=None) == normalized


def test_a_foreign_number_is_not_read_as_brazilian() -> None:
    # A US national number in a Brazilian checkout is invalid in Brazil: dropped, never
    # turned into a Brazilian number; with the buyer's country it reads right.
    assert pii.normalize_phone("(650) 555-1212") is None
    assert pii.hash_user_data({"ph": "(650) 555-1212", "country": "United States"}) == {
        "ph": sha("16505551212"),
        "country": sha("us"),
    }
    # A Portuguese number with its country's prefix, in a Brazilian checkout.
    assert pii.normalize_phone("+351 912 345 678") == "351912345678"


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
        ("California", "US", "ca"),
        ("California", None, "ca"),  # a US name without a country
        ("new york", "United States", "ny"),
        ("State of New York", "US", "ny"),
        ("Estado de São Paulo", None, "sp"),
        ("Estado do Rio de Janeiro", "BR", "rj"),
        ("Distrito Federal", "BRA", "df"),
        ("Bavaria", "DE", "bavaria"),
        ("Île-de-France", "FR", "îledefrance"),
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
    [
        ("BR", "br"),
        (" us ", "us"),
        ("Brasil", "br"),
        ("Brazil", "br"),
        ("BRA", "br"),
        ("United States", "us"),
        ("USA", "us"),
        ("Estados Unidos", "us"),
        ("UK", "gb"),
        ("United Kingdom", "gb"),
        ("Reino Unido", "gb"),
        ("Alemanha", "de"),
        ("PRT", "pt"),
        # Real ISO 3166 codes phonenumbers has no region for.
        *((code, code.lower()) for code in ("AQ", "BV", "GS", "HM", "PN", "TF", "UM")),
        # Phone regions that are not ISO 3166 countries.
        ("AC", None),
        ("TA", None),
        ("XK", None),
        ("XX", None),
        ("Brazilian", None),
    ],
)
def test_country(raw: str, normalized: str | None) -> None:
    assert pii.normalize_country(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("19970216", "19970216"),
        ("1997-02-16", "19970216"),
        ("1997/2/16", "19970216"),
        ("1997-02-16T00:00:00Z", "19970216"),  # ISO date-time
        ("1997-02-16T03:00:00.000000-03:00", "19970216"),
        ("1997-02-16 00:00:00", "19970216"),
        ("16/02/1997", "19970216"),  # Brazilian day-first
        ("16-02-1997", "19970216"),
        ("16.02.1997", "19970216"),
        ("16/02/1997 10:30", "19970216"),
        ("2/16/1997", "19970216"),  # Meta's example: reads month-first only
        ("03/04/1990", "19900403"),  # ambiguous: the gateway's order (day first here)
        (dt.date(1997, 2, 16), "19970216"),
        (dt.datetime(1997, 2, 16, 23, 0), "19970216"),
        ("31/02/1997", None),
        ("1850-01-01", None),
        ("16/02/97", None),  # two-digit year: the century is a guess
        ("yesterday", None),
    ],
)
def test_birth_date(raw: object, normalized: str | None) -> None:
    assert pii.normalize_birth_date(raw) == normalized


def test_ambiguous_birth_dates_follow_the_gateways_order() -> None:
    assert pii.normalize_birth_date("03/04/1990", "dmy") == "19900403"
    assert pii.normalize_birth_date("03/04/1990", "mdy") == "19900304"
    assert pii.hash_user_data({"db": "03/04/1990"}, date_order="mdy") == {"db": sha("19900304")}
    # Unambiguous dates read the same whatever the order.
    assert pii.normalize_birth_date("16/02/1997", "mdy") == "19970216"


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("F", "f"),
        ("Female", "f"),
        ("Feminino", "f"),
        ("male", "m"),
        (" M ", "m"),
        ("masculino", "m"),
        ("x", None),
        ("", None),
    ],
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


def test_user_data_without_a_default_country_reads_only_international_phones() -> None:
    assert pii.hash_user_data({"ph": "(11) 98765-4321"}, default_region=None) == {}
    assert pii.hash_user_data({"ph": "+55 11 98765-4321"}, default_region=None) == {
        "ph": sha("5511987654321")
    }


def test_user_data_hashes_birth_date_and_gender() -> None:
    assert pii.hash_user_data({"db": "1991-01-01", "ge": "Feminino"}) == {
        "db": sha("19910101"),
        "ge": sha("f"),
    }


def test_is_sha256_hex_demands_lowercase() -> None:
    digest = sha("x")
    assert pii.is_sha256_hex(digest)
    assert not pii.is_sha256_hex(digest.upper())
    assert not pii.is_sha256_hex(digest[:-1])


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ("177.71.32.10", "177.71.32.10"),  # a Brazilian broadband address
        ("2804:14c:65a0::1", "2804:14c:65a0::1"),
        ("[2804:14c:65a0::1]:443", "2804:14c:65a0::1"),
        ("177.71.32.10:51234", "177.71.32.10"),
        ("::ffff:177.71.32.10", "177.71.32.10"),  # IPv4-mapped
        # A proxy's, a pod's, a test value: never the buyer.
        ("10.0.0.7", None),
        ("172.16.5.4", None),
        ("192.168.1.1", None),
        ("127.0.0.1", None),
        ("::1", None),
        ("100.64.0.1", None),  # carrier-grade NAT
        ("169.254.10.1", None),  # link-local
        ("fe80::1", None),
        ("fc00::1", None),  # unique local
        ("192.0.2.1", None),  # documentation
        ("2001:db8::1", None),
        ("240.0.0.1", None),  # reserved
        ("0.0.0.0", None),
        ("224.0.0.1", None),  # multicast
        ("not an ip", None),
    ],
)
def test_only_public_addresses_reach_meta(raw: str, sent: str | None) -> None:
    assert public_ip(raw) == sent
