"""The personal data in a gateway payload, and a search for it in whatever a test collected.

Values are derived from the payload's own personal fields (buyer e-mail, phone, name and its
parts, document, street address, zip code, birth date), so a fixture added later is covered
without a hand-kept list. Each value is searched in the forms a leak takes: as is, lower-cased,
JSON-escaped (``"Jo\\u00e3o"``), URL-encoded, and digits only for documents and phones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

_PERSONAL_KEY = re.compile(
    r"e_?mail|phone|cel(?:ular|lphone)?$|_cel$|tel\d?$|mobile|fone|(?:^|_)name$|^nome$|fullname|"
    r"first_?name|last_?name|cpf|cnpj|document|doc_?number|taxnumber|identification_number|"
    r"street|address$|^endereco$|complement|bairro|neighborhood|district$|zip_?code|^cep$|"
    r"birth|nascimento|holder"
)
_NAME_KEY = re.compile(r"(?:^|_)name$|^nome$|fullname|first_?name|last_?name|holder")
# Keys naming data that is not the buyer's (products, offers, the seller's own contacts,
# commissions) and whole branches that describe them.
_NOT_PERSONAL_KEY = re.compile(
    r"product|plan|offer|coupon|custom_name|company_name|trade_name|support|status_name|"
    r"method_?name|^pro_|^aff_|^producer_|document_type|doc_?type|phone_code|phone_extension|"
    r"area_code"
)
_NOT_PERSONAL_BRANCH = re.compile(
    r"^(?:product|products|produto|produtos|plan|plano|offer|item|items|trans_items|producer|"
    r"produtor|seller|commission|commissions|comissoes|commissioned_stores|affiliate|affiliates|"
    r"venda_item_order_bump|content|subscription|checkout_country)$",
    re.IGNORECASE,
)
# Placeholder words the fixtures use, and words too common to mean anything found on their own.
_TOO_COMMON = {
    "redacted", "buyer", "name", "cliente", "comprador", "teste", "test", "example", "casa",
    "centro", "brasil", "webhook", "producer", "nome", "aluno", "card",
}  # fmt: skip
_MIN_LENGTH = 5
_MIN_NAME_PART = 4
_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class Leak:
    """A personal value found, the form it was found in, and a little of what surrounds it."""

    value: str
    form: str
    context: str


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for child_key, child in node.items():
            if not _NOT_PERSONAL_BRANCH.match(_snake(str(child_key))):
                yield from _walk(child, str(child_key))
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child, key)
    elif isinstance(node, str | int) and not isinstance(node, bool):
        yield _snake(key), str(node)


def _usable(value: str) -> bool:
    stripped = value.strip()
    if len(stripped) < _MIN_LENGTH or stripped.lower() in _TOO_COMMON:
        return False
    digits = _DIGITS.sub("", stripped)
    if len(digits) == len(stripped.replace(" ", "")) and len(set(digits)) == 1:
        # One digit repeated ("99999999999"): a placeholder, never a real document or phone,
        # and it stands inside any boleto line of nines.
        return False
    return not all(word.lower() in _TOO_COMMON for word in stripped.split())


def personal_values(payload: Any) -> set[str]:
    """The buyer's personal values in ``payload`` (a decoded JSON body), and their parts."""
    found: set[str] = set()
    for key, raw in _walk(payload):
        if not _PERSONAL_KEY.search(key) or _NOT_PERSONAL_KEY.search(key):
            continue
        value = raw.strip()
        candidates = {value}
        names: set[str] = set()
        if _NAME_KEY.search(key):
            # First and last names on their own (a four-letter one too).
            names |= {part for part in value.split() if len(part) >= _MIN_NAME_PART}
        digits = _DIGITS.sub("", value)
        if len(digits) >= 8 and "@" not in value:
            candidates.add(digits)  # "(11) 99999-9999" leaks as 11999999999 too
        found |= {candidate for candidate in candidates if _usable(candidate)}
        found |= {name for name in names if name.lower() not in _TOO_COMMON}
    return found


def _forms(value: str) -> dict[str, str]:
    return {
        "raw": value.lower(),
        "json-escaped": json.dumps(value)[1:-1].lower(),
        "url-encoded": quote(value, safe="").lower(),
        "form-encoded": quote_plus(value, safe="").lower(),
    }


def find_leaks(values: Iterable[str], *texts: str) -> list[Leak]:
    """Every value of ``values`` found, in any of its forms, case-insensitively, in ``texts``."""
    leaks: list[Leak] = []
    haystacks = [text.lower() for text in texts]
    for value in sorted(set(values)):
        for form, needle in _forms(value).items():
            for haystack in haystacks:
                at = haystack.find(needle)
                if at >= 0:
                    leaks.append(Leak(value, form, haystack[max(0, at - 40) : at + 40]))
                    break
            else:
                continue
            break
    return leaks
