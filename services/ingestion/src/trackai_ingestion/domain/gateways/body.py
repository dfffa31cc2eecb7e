"""The one parse step every webhook body goes through before anything reads it.

A body that passes is a JSON object whose every key and string is storable text (no NUL, no lone
surrogate: PostgreSQL's ``text``/``jsonb``, protobuf and UTF-8 encoding all refuse those), whose
every number is an exact, bounded ``int`` or ``Decimal``, nested at most :data:`MAX_DEPTH` deep,
with no key repeated in any object. Anything else raises :class:`MalformedBody` (and only that) with
a message that names the place and never quotes more than a short, escaped excerpt, so it is safe
to answer and to record even before the request is authenticated.

Encoding: JSON between systems is UTF-8 (RFC 8259 section 8.1). A UTF-8 byte-order mark is
ignored (signatures are computed on the raw bytes, BOM included); UTF-16 and UTF-32 are refused.
"""

from __future__ import annotations

import codecs
import json
import re
from decimal import Decimal
from typing import Any

from trackai_ingestion.domain.model import MalformedBody

#: Deepest nesting accepted (the gateways' real payloads are at most 5 levels deep).
MAX_DEPTH = 32
#: Longest number literal accepted: exact amounts, epoch milliseconds and numeric ids fit.
MAX_NUMBER_CHARS = 40
#: Numbers must lie within 10^±MAX_EXPONENT (``1e999`` is not an amount, a time or an id).
MAX_EXPONENT = 30
#: Integers have at most MAX_NUMBER_CHARS digits (checked on the parsed value: a hook per integer
#: literal would cost more than the whole walk).
_INT_LIMIT = 10**MAX_NUMBER_CHARS
#: Characters no stored string may hold: NUL and the UTF-16 surrogate range.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _BadNumber:
    """A number literal refused by the parse hooks; reported by the walk, which knows where."""

    __slots__ = ("literal", "why")

    def __init__(self, literal: str, why: str) -> None:
        self.literal = literal
        self.why = why


class _RepeatedKeys(dict[str, Any]):
    """An object in which ``repeated`` appeared more than once (reported by the walk)."""

    repeated: str = ""


def _decimal(literal: str) -> Decimal | _BadNumber:
    if len(literal) > MAX_NUMBER_CHARS:
        return _BadNumber(literal, f"has more than {MAX_NUMBER_CHARS} characters")
    value = Decimal(literal)
    if value and not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        return _BadNumber(
            literal,
            f"is out of range (at most 1e{MAX_EXPONENT} in magnitude, at least 1e-{MAX_EXPONENT})",
        )
    return value


def _constant(literal: str) -> _BadNumber:
    return _BadNumber(literal, "is not a finite number (NaN and Infinity are not JSON)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    flagged = _RepeatedKeys(result)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            flagged.repeated = key
            break
        seen.add(key)
    return flagged


def _excerpt(value: str) -> str:
    """A short, ASCII-escaped quote of untrusted text for messages."""
    return ascii(value[:40]) + ("..." if len(value) > 40 else "")


def _where(path: tuple[str | int, ...]) -> str:
    """``data.items[0].name``, escaped to ASCII (keys are untrusted text too)."""
    if not path:
        return "body"
    dotted = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" if i else part
        for i, part in enumerate(path)
    )
    return ascii(dotted[:80])[1:-1]


def _string_problem(value: str) -> str | None:
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone UTF-16 surrogate"


_CONTAINERS = frozenset({dict, list, _RepeatedKeys})


def _check(root: dict[str, Any]) -> None:
    """Walk the parsed body once, iteratively (no recursion limit to meet). Per object or array,
    the types present are collected at C speed and only those that need a look get one: strings
    are searched as one joined text, integers bounded by their min and max, so the walk costs
    about what the parse does even for a body of 40,000 numbers."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            raise MalformedBody(f"{_where(path)}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            if type(node) is _RepeatedKeys:
                raise MalformedBody(
                    f"{_where(path)}: key {_excerpt(node.repeated)} appears more than once"
                )
            if _UNSTORABLE.search("".join(node)):
                problem = next(filter(None, map(_string_problem, node)))
                raise MalformedBody(f"{_where(path)}: a key contains {problem}")
            values: list[Any] = list(node.values())
        else:
            values = node
        kinds = set(map(type, values))
        mixed = len(kinds) > 1
        if str in kinds:
            strings = [v for v in values if type(v) is str] if mixed else values
            if _UNSTORABLE.search("".join(strings)):
                _report(node, path)
        if int in kinds:
            ints = [v for v in values if type(v) is int] if mixed else values
            if max(ints) >= _INT_LIMIT or min(ints) <= -_INT_LIMIT:
                _report(node, path)
        if _BadNumber in kinds:
            _report(node, path)
        if kinds & _CONTAINERS:
            pairs = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((v, (*path, k)) for k, v in pairs if type(v) in _CONTAINERS)


def _report(node: dict[str, Any] | list[Any], path: tuple[str | int, ...]) -> None:
    """Raise for the first value of ``node`` the walk found something wrong with."""
    pairs = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in pairs:
        where = _where((*path, key))
        kind = type(value)
        if kind is str and (problem := _string_problem(value)):
            raise MalformedBody(f"{where}: contains {problem}")
        if kind is int and not -_INT_LIMIT < value < _INT_LIMIT:
            raise MalformedBody(f"{where}: a number has more than {MAX_NUMBER_CHARS} digits")
        if kind is _BadNumber:
            raise MalformedBody(f"{where}: the number {_excerpt(value.literal)} {value.why}")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a checked JSON object; raises :class:`MalformedBody` and nothing else."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if b"\x00" in raw:
        # UTF-16/32 text is full of NUL bytes; valid UTF-8 JSON never has one (it would be \u0000).
        raise MalformedBody("body contains NUL bytes: webhook JSON must be UTF-8 (RFC 8259)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"body is not UTF-8 text ({exc.reason} at byte {exc.start}); webhook JSON must be "
            "UTF-8 (RFC 8259)"
        ) from None
    try:
        parsed = json.loads(
            text,
            parse_float=_decimal,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise MalformedBody(f"body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:
        # Python's own bound on integer literals (4,300 digits), met before the walk's.
        raise MalformedBody(f"body: a number has more than {MAX_NUMBER_CHARS} digits") from None
    if not isinstance(parsed, dict):
        kind = "number" if isinstance(parsed, _BadNumber) else type(parsed).__name__
        raise MalformedBody(f"body must be a JSON object, got a JSON {kind}")
    _check(parsed)
    return parsed
