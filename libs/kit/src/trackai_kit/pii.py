"""Meta-compatible normalisation and SHA-256 hashing of personal data (the only implementation).

Every ``normalize_*`` returns the normalised plaintext or ``None`` when the input is unusable (it
never raises on bad data); :func:`hash_value` turns that into the lowercase hex digest Meta expects
and passes through a value that is already a SHA-256 digest instead of hashing it twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Literal

import phonenumbers

MatchKey = Literal["em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge", "external_id"]
MATCH_KEYS: tuple[MatchKey, ...] = (
    "em",
    "ph",
    "fn",
    "ln",
    "ct",
    "st",
    "zp",
    "country",
    "db",
    "ge",
    "external_id",
)
DEFAULT_REGION = "BR"

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SHA256_ANY_CASE = re.compile(r"^[0-9a-fA-F]{64}$")
_WHITESPACE = re.compile(r"\s+")
_BR_CEP = re.compile(r"^\d{5}[-.\s]?\d{3}$")

# Brazilian states by name (accents folded, letters only) -> UF code, so "São Paulo" and "SP"
# hash alike. Gateways send either form.
_BR_STATES = {
    "acre": "ac",
    "alagoas": "al",
    "amapa": "ap",
    "amazonas": "am",
    "bahia": "ba",
    "ceara": "ce",
    "distritofederal": "df",
    "espiritosanto": "es",
    "goias": "go",
    "maranhao": "ma",
    "matogrosso": "mt",
    "matogrossodosul": "ms",
    "minasgerais": "mg",
    "para": "pa",
    "paraiba": "pb",
    "parana": "pr",
    "pernambuco": "pe",
    "piaui": "pi",
    "riodejaneiro": "rj",
    "riograndedonorte": "rn",
    "riograndedosul": "rs",
    "rondonia": "ro",
    "roraima": "rr",
    "santacatarina": "sc",
    "saopaulo": "sp",
    "sergipe": "se",
    "tocantins": "to",
}
_COUNTRY_NAMES = {"brasil": "br", "brazil": "br"}
_GENDERS = {
    "f": "f",
    "female": "f",
    "feminino": "f",
    "fem": "f",
    "mulher": "f",
    "m": "m",
    "male": "m",
    "masculino": "m",
    "masc": "m",
    "homem": "m",
}
_DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y")


def is_sha256_hex(value: str) -> bool:
    """True for a 64-character lowercase hex string, the shape of every stored hash."""
    return bool(_SHA256_HEX.fullmatch(value))


def sha256_hex(normalized: str) -> str:
    """SHA-256 of the UTF-8 bytes, lowercase hex."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFC", str(value)).strip()
    return text or None


def _letters_digits_spaces(text: str) -> str:
    # Unicode categories P* (punctuation) and S* (symbols) go; letters keep their accents, as in
    # Meta's own example "Valéry" -> "valéry".
    kept = "".join(ch for ch in text if unicodedata.category(ch)[0] not in ("P", "S"))
    return _WHITESPACE.sub(" ", kept).strip()


def _fold_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_email(value: object) -> str | None:
    """Trim and lowercase; ``None`` unless it looks like ``local@domain.tld``."""
    text = _clean(value)
    if text is None:
        return None
    text = text.lower()
    local, at, domain = text.partition("@")
    if not at or not local or "@" in domain or "." not in domain.strip("."):
        return None
    if _WHITESPACE.search(text):
        return None
    return text


def normalize_phone(value: object, default_region: str = DEFAULT_REGION) -> str | None:
    """E.164 digits without ``+`` (``5511987654321``); ``None`` for an invalid number.

    A number without a country code is read in ``default_region``; one written with a bare
    country code (``5511...``) or the ``00`` international prefix is also recognised.
    """
    text = _clean(value)
    if text is None:
        return None
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if text.startswith("+"):
        candidates = [text]
    elif digits.startswith("00"):
        candidates = ["+" + digits[2:], text]
    else:
        candidates = [text, "+" + digits]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, default_region.upper())
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            return e164.removeprefix("+")
    return None


def normalize_name(value: object) -> str | None:
    """First or last name: lowercase, punctuation and symbols removed, UTF-8 letters kept."""
    text = _clean(value)
    if text is None:
        return None
    return _letters_digits_spaces(text.lower()) or None


def normalize_city(value: object) -> str | None:
    """City: lowercase letters only (no spaces, punctuation or digits), accents kept."""
    text = _clean(value)
    if text is None:
        return None
    return "".join(ch for ch in text.lower() if ch.isalpha()) or None


def normalize_state(value: object, country: str | None = None) -> str | None:
    """State: two-letter code in lowercase; Brazilian state names become their UF code.

    Outside Brazil and the US a longer value is kept as lowercase letters only (Meta's rule for
    states without an ANSI code).
    """
    text = _clean(value)
    if text is None:
        return None
    letters = "".join(ch for ch in text.lower() if ch.isalpha())
    if not letters:
        return None
    if len(letters) == 2:
        return letters
    if country is None or normalize_country(country) == "br":
        code = _BR_STATES.get(_fold_accents(letters))
        if code is not None:
            return code
    return letters


def normalize_zip(value: object, country: str | None = None) -> str | None:
    """Postal code: US first five digits, Brazil all eight; else lowercase, no spaces or dashes."""
    text = _clean(value)
    if text is None:
        return None
    iso = normalize_country(country) if country is not None else None
    if iso == "us":
        digits = re.sub(r"\D", "", text)
        return digits[:5] if len(digits) >= 5 else None
    if iso == "br" or (iso is None and _BR_CEP.fullmatch(text)):
        digits = re.sub(r"\D", "", text)
        return digits if len(digits) == 8 else None
    return re.sub(r"[\s-]", "", text.lower()) or None


def normalize_country(value: object) -> str | None:
    """ISO 3166-1 alpha-2 in lowercase (``br``); ``None`` for anything that is not one."""
    return _country(value) if isinstance(value, str) else _country_uncached(value)


@lru_cache(maxsize=1024)
def _country(value: str) -> str | None:
    # Countries are a small vocabulary read several times per payload (and per key).
    return _country_uncached(value)


def _country_uncached(value: object) -> str | None:
    text = _clean(value)
    if text is None:
        return None
    letters = "".join(ch for ch in _fold_accents(text.lower()) if ch.isalpha())
    letters = _COUNTRY_NAMES.get(letters, letters)
    if len(letters) == 2 and letters.upper() in phonenumbers.SUPPORTED_REGIONS:
        return letters
    return None


def normalize_birth_date(value: object) -> str | None:
    """Date of birth as ``YYYYMMDD``; accepts dates, ISO and day-first Brazilian forms."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        parsed: dt.date | None = value
    else:
        text = _clean(value)
        if text is None:
            return None
        parsed = None
        for fmt in _DATE_FORMATS:
            try:
                parsed = dt.datetime.strptime(text, fmt).date()
            except ValueError:
                continue
            break
    if parsed is None or not 1900 <= parsed.year <= dt.date.today().year:
        return None
    return parsed.strftime("%Y%m%d")


def normalize_gender(value: object) -> str | None:
    """``f`` or ``m``; anything else is not sent."""
    text = _clean(value)
    if text is None:
        return None
    return _GENDERS.get(text.lower())


def normalize_external_id(value: object) -> str | None:
    """External id: trimmed and lowercased, the same rule the browser snippet applies."""
    text = _clean(value)
    return text.lower() if text is not None else None


_NORMALIZERS: Mapping[MatchKey, Callable[[object], str | None]] = {
    "em": normalize_email,
    "fn": normalize_name,
    "ln": normalize_name,
    "ct": normalize_city,
    "country": normalize_country,
    "db": normalize_birth_date,
    "ge": normalize_gender,
    "external_id": normalize_external_id,
}


def _normalize(key: MatchKey, value: object, country: str | None, region: str) -> str | None:
    if key == "ph":
        return normalize_phone(value, region)
    if key == "st":
        return normalize_state(value, country)
    if key == "zp":
        return normalize_zip(value, country)
    return _NORMALIZERS[key](value)


def hash_value(
    key: MatchKey,
    value: object,
    *,
    country: str | None = None,
    default_region: str = DEFAULT_REGION,
) -> str | None:
    """Normalise ``value`` as Meta's ``key`` and hash it; a SHA-256 hex digest passes through.

    ``country`` (any form :func:`normalize_country` accepts) refines states and postal codes.
    """
    if value is None:
        return None
    if isinstance(value, str) and len(value) >= 64 and _SHA256_ANY_CASE.fullmatch(value.strip()):
        return value.strip().lower()
    normalized = _normalize(key, value, country, default_region)
    return sha256_hex(normalized) if normalized is not None else None


def email_hash(value: object) -> str | None:
    """The ``email_hash`` column: SHA-256 of the Meta-normalised e-mail."""
    return hash_value("em", value)


def phone_hash(value: object, default_region: str = DEFAULT_REGION) -> str | None:
    """The ``phone_hash`` column: SHA-256 of the E.164 digits (Brazil when no country code)."""
    return hash_value("ph", value, default_region=default_region)


def hash_user_data(
    fields: Mapping[str, object], *, default_region: str = DEFAULT_REGION
) -> dict[str, str]:
    """Hash every known match key present in ``fields``; unusable values are dropped.

    A usable ``country`` also becomes the phone's default region and the context for ``st``/``zp``.
    Unknown keys are ignored rather than sent unhashed.
    """
    raw_country = fields.get("country")
    iso = normalize_country(raw_country) if isinstance(raw_country, str) else None
    region = iso.upper() if iso is not None else default_region
    hashed: dict[str, str] = {}
    for key in MATCH_KEYS:
        digest = hash_value(key, fields.get(key), country=iso, default_region=region)
        if digest is not None:
            hashed[key] = digest
    return hashed
