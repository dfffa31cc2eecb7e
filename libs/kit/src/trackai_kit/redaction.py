"""Removes personal data and secrets from anything about to leave the process (logs, Sentry).

One recursive function, :func:`redact`, shared by the log pipeline and the Sentry scrubber so both
apply the same rules: sensitive keys (credentials, names, contact details, addresses) lose their
value; free text loses e-mails, phones, CPFs, street addresses, tokens and the values written
after a sensitive key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

REDACTED = "[REDACTED]"
#: Types :func:`redact` returns as they are.
_PLAIN = frozenset({int, float, bool, type(None)})

# A key is sensitive when one of its "_"-separated words names a credential ("x_hub_signature_256",
# "meta_access_token") or when it is exactly a personal datum ("email" but not "email_hash").
# Keys are compared after camelCase/kebab-case become snake_case ("X-Api-Key", "apiKey").
_CREDENTIAL_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "authorization",
        "signature",
        "hottok",
        "apikey",
        "cookie",
        "cookies",
        "credentials",
        "dsn",
    }
)
_CREDENTIAL_PHRASES = (
    "api_key",
    "private_key",
    "secret_key",
    "encryption_key",
    "set_cookie",
    # Monetizze's and Braip's webhook secrets.
    "chave_unica",
    "basic_authentication",
)
_PERSONAL_KEYS = frozenset(
    {
        "email",
        "e_mail",
        "phone",
        "phone_number",
        "mobile",
        "telefone",
        "celular",
        "cpf",
        "cnpj",
        "document",
        "doc",
        # Names (Portuguese and English spellings).
        "name",
        "first_name",
        "last_name",
        "middle_name",
        "full_name",
        "fullname",
        "given_name",
        "family_name",
        "surname",
        "customer_name",
        "buyer_name",
        "holder_name",
        "nome",
        "sobrenome",
        "nome_completo",
        # Postal addresses and birth dates.
        "address",
        "street",
        "street_name",
        "street_number",
        "endereco",
        "logradouro",
        "complement",
        "complemento",
        "district",
        "bairro",
        "neighborhood",
        "zip",
        "zipcode",
        "zip_code",
        "postal_code",
        "cep",
        "birthday",
        "birth_date",
        "date_birth",
        "data_nascimento",
    }
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*")
# "key=value", "key: value", "key: \"quoted value\"" (a protobuf's text form, a dict's repr, JSON)
# where the key names a credential (one of its "_"/"-"-separated words: "access_token",
# "signing_secret", "X-Hotmart-Hottok") or a person ("full_name", "nome", "cpf"): the value goes,
# quoted values whole ("Maria Aparecida Souza").
_KEYED_VALUE = re.compile(
    r"""(?ix)
    (?<![\w\-])(["']?)
    (
      (?:[a-z0-9]+[_\-])*
      (?:access_token|refresh_token|token|secret|password|passwd|api_key|apikey|signature
        |hottok|authorization|credentials?|cookie|dsn)
      (?:[_\-][a-z0-9]+)*
    | (?:first_|last_|middle_|full_|customer_|buyer_|holder_)?(?:name|nome)
    | sobrenome|nome_completo|e_?mail|phone|telefone|celular|cpf|cnpj
    )
    \1(\s*[=:]\s*)
    (?!\[REDACTED\])  # already redacted (a URL scrubbed before, a second pass)
    ("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s&,;"'})\]]+)
    """
)
# CPF in any usual spelling: "123.456.789-09", "123 456 789 09", "123456789-09" (an IPv4 address,
# "192.168.100.12", is not one: its last separator is a dot); CNPJ "12.345.678/0001-90".
_CPF = re.compile(r"(?<![\w.\-/])\d{3}([.\s\-]?)\d{3}\1\d{3}[\s\-/]?\d{2}(?![\w\-/])")
_CNPJ = re.compile(r"(?<![\w.\-/])\d{2}\.?\d{3}\.?\d{3}/\d{4}-?\d{2}(?![\w\-/])")
# Formatted phones: "+55 (11) 91234-5678", "(11) 91234-5678", "11 91234 5678", "+1 415-555-2671",
# and the mobile's leading 9 written apart: "+55 11 9 1234-5678", "11 9 1234 5678".
_PHONE_FORMATTED = re.compile(
    r"(?<![\w.\-/+])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,3}\)|\d{2,3})[\s.\-]?(?:\d[\s.\-])?"
    r"\d{3,5}[\s.\-]\d{4}(?![\w\-/])"
)
# Bare runs of 10-13 digits (Brazilian numbers with area code, E.164, unformatted CPF) or a bare
# 9-digit mobile ("912345678"), not when they are a piece of a longer token such as a hex id or a
# UUID segment.
_DIGIT_RUN = re.compile(r"(?<![\w.\-/])\+?(?:\d{10,13}|9\d{8})(?![\w.\-/])")
# A street address: a thoroughfare word, its name, and a number ("Rua das Flores, 123",
# "Av. Paulista 1000", "Rua 1001").
_ADDRESS = re.compile(
    r"(?i)(?<![\w])(?:rua|avenida|av\.?|alameda|travessa|rodovia|estrada|pra[çc]a"
    r"|largo|street|avenue|road)\s+[^\d\n,;]{0,60}?,?\s*(?:n[º°o.]?\s*)?\d{1,6}(?!\w)"
)


# What every pattern above needs before it can match, checked first because most text (statuses,
# ids, product names, timestamps) has none of it: an "@" (e-mail); "bearer"/"basic"; a "=" or ":"
# after one of the words a sensitive key contains; a digit and a thoroughfare word (address); or
# digits shaped like a formatted phone's end, a 9-13 digit run, a CPF or a CNPJ. Each check is one
# scan, and the word scans run only when their separator or digit is there. Lower-casing stands
# in for the patterns' case-insensitive words only for ASCII text (Unicode case rules match a few
# other letters, e.g. U+017F, long s, to "s"); other text always takes the patterns.
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_AUTH_SCHEMES = re.compile(r"bearer|basic")
_KEY_WORDS = re.compile(
    r"token|secret|passw|api_key|apikey|signature|hottok|authorization|credential|cookie|dsn"
    r"|name|nome|mail|phone|telefone|celular|cpf|cnpj"
)
_ADDRESS_WORDS = re.compile(
    r"rua|av|alameda|travessa|rodovia|estrada|praca|largo|street|avenue|road"
)
_DIGIT = re.compile(r"\d")
_DIGIT_SHAPES = re.compile(r"\d{3}(?:[\s.\-]?\d{4}|[.\s\-]\d{3}[.\s\-]\d{3}|/\d{4})")


def _may_match(text: str) -> bool:
    if "@" in text or not text.isascii():
        return True
    if _DIGIT_SHAPES.search(text) is not None:
        return True
    lowered = text.lower()
    if _AUTH_SCHEMES.search(lowered) is not None:
        return True
    if ("=" in text or ":" in text) and _KEY_WORDS.search(lowered) is not None:
        return True
    return _DIGIT.search(text) is not None and _ADDRESS_WORDS.search(lowered) is not None


# Keys whose values are public numeric ids of the ad platforms (a Meta pixel id is 15-16 digits,
# often written with 10+ in tests), kept as they are when all digits: the digit-run rule would
# otherwise log every pixel id as "[PHONE]" and hide which destination a line is about.
_PUBLIC_ID_KEYS = frozenset({"pixel_id", "dataset_id", "ad_account_id", "business_id"})
_ALL_DIGITS = re.compile(r"\d{1,20}")


def _public_id(key: object, value: object) -> bool:
    return (
        isinstance(key, str)
        and isinstance(value, str)
        and _is_public_id_key(key)
        and _ALL_DIGITS.fullmatch(value) is not None
    )


@lru_cache(maxsize=4096)
def _is_public_id_key(key: str) -> bool:
    """Cached like :func:`is_sensitive_key`: every entry of every log line asks."""
    return snake_key(key) in _PUBLIC_ID_KEYS


def snake_key(key: str) -> str:
    """A key in the snake_case the key rules compare (``X-Api-Key`` -> ``x_api_key``)."""
    return _CAMEL_BOUNDARY.sub("_", key).lower().replace("-", "_")


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """Whether a mapping key names a credential or a personal datum (its value is dropped).

    Cached: keys come from a small vocabulary (payload schemas, log fields); the cache is bounded,
    so unusual keys only cost the uncached check.
    """
    normalised = snake_key(key)
    if normalised in _PERSONAL_KEYS or any(p in normalised for p in _CREDENTIAL_PHRASES):
        return True
    return not _CREDENTIAL_WORDS.isdisjoint(normalised.split("_"))


def redact_text(text: str) -> str:
    """Replace e-mails, phones, CPFs, street addresses, bearer tokens and the values of
    credential or personal keys (``secret: "..."``, ``'full_name': '...'``) inside free text."""
    return _apply_patterns(text) if _may_match(text) else text


def _keyed(match: re.Match[str]) -> str:
    quote, key, separator, value = match.groups()
    value_quote = value[0] if value[:1] in {'"', "'"} else ""
    return f"{quote}{key}{quote}{separator}{value_quote}{REDACTED}{value_quote}"


def _apply_patterns(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _KEYED_VALUE.sub(_keyed, text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CNPJ.sub("[CNPJ]", text)
    text = _CPF.sub("[CPF]", text)
    text = _PHONE_FORMATTED.sub("[PHONE]", text)
    text = _DIGIT_RUN.sub("[PHONE]", text)
    return _ADDRESS.sub("[ADDRESS]", text)


def redact(value: object) -> object:
    """Return a copy of ``value`` without personal data or secrets; recursive on dicts and lists.

    Strings are rewritten with :func:`redact_text`; a mapping entry whose key is sensitive keeps its
    key and loses its value; raw bytes are replaced by their length (they may hold anything).
    """
    if type(value) in _PLAIN:  # the common scalars, without the ABC checks below
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: (
                REDACTED
                if isinstance(key, str) and is_sensitive_key(key)
                else item
                if _public_id(key, item)
                else redact(item)
            )
            for key, item in value.items()
        }
    return _redact_collection(value)


def _redact_collection(value: object) -> object:
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    if isinstance(value, list | set | frozenset):
        return [redact(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    return value
