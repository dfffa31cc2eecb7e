"""Meta-compatible normalisation and SHA-256 hashing of personal data (the only implementation).

Every ``normalize_*`` returns the normalised plaintext or ``None`` when the input is unusable (it
never raises on bad data); :func:`hash_value` turns that into the lowercase hex digest Meta expects
and passes through a value that is already a SHA-256 digest instead of hashing it twice.
"""

from __future__ import annotations

import datetime as dt
import gettext
import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Literal

import phonenumbers
import pycountry

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
#: How a gateway writes an all-numeric birth date whose day and month could be swapped
#: (``03/04/1990``): ``dmy`` (Brazilian, the default) or ``mdy`` (US). A date that reads one way
#: only (``2/16/1997``, ``16/02/1997``) is read that way whatever the order.
DateOrder = Literal["dmy", "mdy"]

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SHA256_ANY_CASE = re.compile(r"^[0-9a-fA-F]{64}$")
_WHITESPACE = re.compile(r"\s+")
_BR_CEP = re.compile(r"^\d{5}[-.\s]?\d{3}$")

#: Common names ISO 3166 does not list (its English and Portuguese names, alpha-2 and alpha-3
#: codes are read from ``pycountry``).
_COUNTRY_ALIASES = {
    "uk": "gb",
    "england": "gb",
    "greatbritain": "gb",
    "scotland": "gb",
    "wales": "gb",
    "northernireland": "gb",
    "inglaterra": "gb",
    "usa": "us",
    "eua": "us",
    "america": "us",
    "unitedstatesofamerica": "us",
    "holland": "nl",
    "holanda": "nl",
    "southkorea": "kr",
    "coreiadosul": "kr",
    "russia": "ru",
}
#: Words before a state's name that are not part of it ("Estado de São Paulo", "State of Ohio").
_STATE_PREFIX = re.compile(r"^(?:estado|state|provincia|province)\s+(?:(?:de|do|da|of)\s+)?")
_GENDERS = {
    "f": "f",
    "female": "f",
    "woman": "f",
    "feminino": "f",
    "fem": "f",
    "mulher": "f",
    "m": "m",
    "male": "m",
    "man": "m",
    "masculino": "m",
    "masc": "m",
    "homem": "m",
}
#: ``YYYYMMDD`` and year-first dates (ISO), with any punctuation.
_YEAR_FIRST = re.compile(r"(\d{4})[-/.\s]?(\d{1,2})[-/.\s]?(\d{1,2})")
#: Day and month first in either order, four-digit year last.
_YEAR_LAST = re.compile(r"(\d{1,2})[-/.\s](\d{1,2})[-/.\s](\d{4})")
#: A time after the date (``T00:00:00Z``, `` 00:00:00``, ``T03:00:00.000000+00:00``).
_TIME_PART = re.compile(r"(?:[T\s]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)$")
#: Phone extensions and remarks written after the number ("ramal 12", "ext. 3", "(whatsapp)").
_PHONE_REMARK = re.compile(r"\([^)]*[^\W\d_][^)]*\)")
_PHONE_EXTENSION = re.compile(
    r"\s*(?:ramal|ext(?:ens[aã]o|ension)?\.?|r\.|x|#)\s*\d+\s*$", re.IGNORECASE
)


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


def normalize_phone(value: object, default_region: str | None = DEFAULT_REGION) -> str | None:
    """E.164 digits without ``+`` (``5511987654321``); ``None`` for an invalid number.

    Remarks and extensions written after the number (``(whatsapp)``, ``ramal 12``) are dropped
    first, as Meta advises. A number without a country code is read in ``default_region``; with
    no default region only an international number (``+``, ``00`` or a valid country code in
    front) is accepted, so a foreign number is never read as a Brazilian one by assumption.
    """
    text = _clean(value)
    if text is None:
        return None
    text = _PHONE_EXTENSION.sub("", _PHONE_REMARK.sub(" ", text)).strip()
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if text.startswith("+"):
        candidates = ["+" + digits]
    elif digits.startswith("00"):
        candidates = ["+" + digits[2:]]
        if default_region is not None:
            candidates.append(digits)
    elif default_region is not None:
        candidates = [digits, "+" + digits]
    else:
        candidates = ["+" + digits]
    region = default_region.upper() if default_region is not None else None
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
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
    """State: the two-letter code in lowercase; Brazilian and US state names become their code.

    ``Estado de São Paulo`` and ``State of California`` lose their prefix. Without a country a
    Brazilian, then a US, name is recognised. Elsewhere a longer value is kept as lowercase
    letters only (Meta's rule for states without an ANSI code).
    """
    text = _clean(value)
    if text is None:
        return None
    letters = _letters(_STATE_PREFIX.sub("", _fold_accents(text.lower())))
    if not letters:
        return None
    if len(letters) == 2:
        return letters
    iso = normalize_country(country) if country is not None else None
    for region in (iso,) if iso is not None else ("br", "us"):
        code = _state_codes(region).get(letters)
        if code is not None:
            return code
    return "".join(ch for ch in text.lower() if ch.isalpha())


@lru_cache(maxsize=8)
def _state_codes(iso: str) -> Mapping[str, str]:
    """Folded state names -> two-letter code, for the countries whose codes Meta uses (BR, US)."""
    if iso not in ("br", "us"):
        return {}
    codes: dict[str, str] = {}
    for sub in pycountry.subdivisions:
        prefix, _, suffix = sub.code.lower().partition("-")
        if prefix == iso and len(suffix) == 2:
            codes[_letters(sub.name)] = suffix
    return codes


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
    return _country_index().get(_letters(text))


def _letters(text: str) -> str:
    return "".join(ch for ch in _fold_accents(text.lower()) if ch.isalpha())


@lru_cache(maxsize=1)
def _country_index() -> Mapping[str, str]:
    """ISO 3166-1 alpha-2, alpha-3, English names (short, official, common) and Brazilian
    Portuguese names, folded to letters -> alpha-2 in lowercase."""
    portuguese = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["pt_BR"])
    index: dict[str, str] = {}
    for country in pycountry.countries:
        code = country.alpha_2.lower()
        names = [
            country.name,
            getattr(country, "official_name", ""),
            getattr(country, "common_name", ""),
            portuguese.gettext(country.name),
        ]
        for name in names:
            if name:
                index.setdefault(_letters(name), code)
    index.update(_COUNTRY_ALIASES)
    # Codes last: they win over a name that happens to spell one.
    for country in pycountry.countries:
        index[country.alpha_3.lower()] = country.alpha_2.lower()
        index[country.alpha_2.lower()] = country.alpha_2.lower()
    return index


def normalize_birth_date(value: object, order: DateOrder = "dmy") -> str | None:
    """Date of birth as ``YYYYMMDD`` (Meta's ``db``), years 1900 to this year.

    Accepts dates and date-times, ISO forms with or without a time (``1997-02-16T00:00:00Z``),
    ``YYYYMMDD`` and day/month/year with any punctuation. When day and month could be swapped
    ``order`` decides (each gateway declares its own); a date that reads only one way is read
    that way (Meta's own example ``2/16/1997``).
    """
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return _in_range(value)
    text = _clean(value)
    if text is None:
        return None
    text = _TIME_PART.sub("", text).strip()
    if match := _YEAR_FIRST.fullmatch(text):
        year, month, day = (int(part) for part in match.groups())
        return _in_range(_date(year, month, day))
    if match := _YEAR_LAST.fullmatch(text):
        first, second, year = (int(part) for part in match.groups())
        day_first = _date(year, second, first)
        month_first = _date(year, first, second)
        if day_first is not None and month_first is not None:
            return _in_range(day_first if order == "dmy" else month_first)
        return _in_range(day_first or month_first)
    return None


def _date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _in_range(date: dt.date | None) -> str | None:
    if date is None or not 1900 <= date.year <= dt.date.today().year:
        return None
    return date.strftime("%Y%m%d")


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
    "ge": normalize_gender,
    "external_id": normalize_external_id,
}


def _normalize(
    key: MatchKey, value: object, country: str | None, region: str | None, order: DateOrder
) -> str | None:
    if key == "ph":
        return normalize_phone(value, region)
    if key == "db":
        return normalize_birth_date(value, order)
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
    default_region: str | None = DEFAULT_REGION,
    date_order: DateOrder = "dmy",
) -> str | None:
    """Normalise ``value`` as Meta's ``key`` and hash it; a SHA-256 hex digest passes through.

    ``country`` (any form :func:`normalize_country` accepts) refines states and postal codes;
    ``default_region`` reads phones without a country code (None: international numbers only);
    ``date_order`` reads ambiguous birth dates.
    """
    if value is None:
        return None
    if isinstance(value, str) and len(value) >= 64 and _SHA256_ANY_CASE.fullmatch(value.strip()):
        return value.strip().lower()
    normalized = _normalize(key, value, country, default_region, date_order)
    return sha256_hex(normalized) if normalized is not None else None


def email_hash(value: object) -> str | None:
    """The ``email_hash`` column: SHA-256 of the Meta-normalised e-mail."""
    return hash_value("em", value)


def phone_hash(value: object, default_region: str | None = DEFAULT_REGION) -> str | None:
    """The ``phone_hash`` column: SHA-256 of the E.164 digits (Brazil when no country code)."""
    return hash_value("ph", value, default_region=default_region)


def hash_user_data(
    fields: Mapping[str, object],
    *,
    default_region: str | None = DEFAULT_REGION,
    date_order: DateOrder = "dmy",
) -> dict[str, str]:
    """Hash every known match key present in ``fields``; unusable values are dropped.

    A usable ``country`` also becomes the phone's default region and the context for ``st``/``zp``;
    without one, ``default_region`` reads national phone numbers (None: none are). Unknown keys
    are ignored rather than sent unhashed.
    """
    raw_country = fields.get("country")
    iso = normalize_country(raw_country) if isinstance(raw_country, str) else None
    region = iso.upper() if iso is not None else default_region
    hashed: dict[str, str] = {}
    for key in MATCH_KEYS:
        digest = hash_value(
            key, fields.get(key), country=iso, default_region=region, date_order=date_order
        )
        if digest is not None:
            hashed[key] = digest
    return hashed
