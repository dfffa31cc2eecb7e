"""Removes personal data and secrets from anything about to leave the process (logs, Sentry).

One recursive function, :func:`redact`, shared by the log pipeline and the Sentry scrubber so both
apply the same rules: sensitive keys lose their value; free text loses e-mails, phones, CPFs and
tokens.
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
    }
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*")
# "token=...", "access_token: ..." inside query strings or free text.
_INLINE_SECRET = re.compile(
    r"(?i)\b(access_token|refresh_token|token|secret|password|api_key|apikey|signature|hottok)"
    r"(\s*[=:]\s*)([^\s&,;\"']+)"
)
_CPF = re.compile(r"(?<![\w.\-/])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w\-/])")
# Formatted phones: "+55 (11) 91234-5678", "(11) 91234-5678", "11 91234 5678", "+1 415-555-2671".
_PHONE_FORMATTED = re.compile(
    r"(?<![\w.\-/+])(?:\+\d{1,3}[\s.\-]?)?\(?\d{2,3}\)?[\s.\-]?\d{3,5}[\s.\-]\d{4}(?![\w\-/])"
)
# Bare runs of 10-13 digits (Brazilian numbers with area code, E.164, unformatted CPF), not when
# they are a piece of a longer token such as a hex id or a UUID segment.
_DIGIT_RUN = re.compile(r"(?<![\w.\-/])\+?\d{10,13}(?![\w.\-/])")


# What every pattern above needs before it can match, checked first because most text (statuses,
# ids, product names, timestamps) has none of it: an "@" (e-mail), a word the secret patterns
# start with, or digits shaped like the end of a formatted phone, a 10-digit run or a formatted
# CPF. Substring tests on the lower-cased text stand in for the patterns' case-insensitive words
# only for ASCII text (Unicode case rules match a few other letters, e.g. U+017F, long s, to
# "s"); other text always takes the patterns.
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_WORDS = (
    "bearer",
    "basic",
    "token",
    "secret",
    "password",
    "apikey",
    "api_key",
    "signature",
    "hottok",
)
_DIGIT_SHAPES = re.compile(r"\d{3}(?:[\s.\-]\d{4}|\d{7}|\.\d{3}\.\d{3}-\d{2})")


def _may_match(text: str) -> bool:
    if "@" in text or not text.isascii():
        return True
    lowered = text.lower()
    if any(word in lowered for word in _SECRET_WORDS):
        return True
    return _DIGIT_SHAPES.search(text) is not None


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
    """Replace e-mails, phones, CPFs, bearer tokens and inline secrets inside free text."""
    return _apply_patterns(text) if _may_match(text) else text


def _apply_patterns(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _INLINE_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CPF.sub("[CPF]", text)
    text = _PHONE_FORMATTED.sub("[PHONE]", text)
    return _DIGIT_RUN.sub("[PHONE]", text)


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
            key: (REDACTED if isinstance(key, str) and is_sensitive_key(key) else redact(item))
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
