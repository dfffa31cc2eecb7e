"""The one definition of Track AI's ``event_id`` (specification: ``docs/schema/event_id.md``).

Meta deduplicates browser and server events by (event_name, event_id); the thank-you-page pixel
computes the same id in JavaScript, so the canonical string is deliberately simple.
"""

from __future__ import annotations

import hashlib
import re
import uuid

#: Versioned prefix of the canonical string; a new rule gets a new prefix, never a silent change.
EVENT_ID_VERSION = "trackai:v1"
SEPARATOR = "|"

#: Meta's standard events, in Meta's spelling; other names are custom events and keep their case.
STANDARD_EVENTS = (
    "AddPaymentInfo",
    "AddToCart",
    "AddToWishlist",
    "CompleteRegistration",
    "Contact",
    "CustomizeProduct",
    "Donate",
    "FindLocation",
    "InitiateCheckout",
    "Lead",
    "PageView",
    "Purchase",
    "Schedule",
    "Search",
    "StartTrial",
    "SubmitApplication",
    "Subscribe",
    "ViewContent",
)
_STANDARD_BY_LOWER = {name.lower(): name for name in STANDARD_EVENTS}

# Only ASCII whitespace is trimmed: Python's str.strip and JavaScript's trim disagree on a few
# Unicode spaces, and the browser must reproduce this rule exactly.
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_GATEWAY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_CUSTOM_EVENT = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
_EVENT_ID = re.compile(r"^[0-9a-f]{64}$")


def _trim(value: str) -> str:
    return value.strip(_ASCII_WHITESPACE)


def canonical_tenant_id(tenant_id: str | uuid.UUID) -> str:
    """Tenant id as 36-character lowercase hyphenated UUID text."""
    if isinstance(tenant_id, uuid.UUID):
        return str(tenant_id)
    text = _trim(tenant_id).lower()
    if not _UUID.fullmatch(text):
        raise ValueError(f"tenant_id must be a hyphenated UUID, got {tenant_id!r}")
    return text


def canonical_gateway(gateway: str) -> str:
    """Gateway slug: trimmed, lowercase, ``[a-z0-9][a-z0-9_.-]{0,31}``."""
    text = _trim(gateway).lower()
    if not _GATEWAY.fullmatch(text):
        raise ValueError(f"gateway must be a short lowercase slug, got {gateway!r}")
    return text


def canonical_order_id(order_id: str) -> str:
    """Order id: ASCII whitespace trimmed at both ends, case and inner characters preserved."""
    text = _trim(order_id)
    if not text:
        raise ValueError("order_id must not be empty")
    return text


def canonical_event_name(event_name: str) -> str:
    """Meta's spelling for a standard event (case-insensitive); a custom name is kept as given."""
    text = _trim(event_name)
    standard = _STANDARD_BY_LOWER.get(text.lower())
    if standard is not None:
        return standard
    if not _CUSTOM_EVENT.fullmatch(text):
        raise ValueError(
            f"event_name must be a Meta standard event or match [A-Za-z0-9_-]{{1,50}}, "
            f"got {event_name!r}"
        )
    return text


def canonical_event_key(
    tenant_id: str | uuid.UUID, gateway: str, order_id: str, event_name: str
) -> str:
    """The string that is hashed: ``trackai:v1|<tenant>|<gateway>|<order_id>|<event_name>``.

    Only ``order_id`` may contain ``|``; every other field's alphabet excludes it, so the string
    still splits back into its fields unambiguously (first two and last ``|`` are separators).
    """
    return SEPARATOR.join(
        (
            EVENT_ID_VERSION,
            canonical_tenant_id(tenant_id),
            canonical_gateway(gateway),
            canonical_order_id(order_id),
            canonical_event_name(event_name),
        )
    )


def event_id(tenant_id: str | uuid.UUID, gateway: str, order_id: str, event_name: str) -> str:
    """SHA-256 (lowercase hex) of the UTF-8 canonical key: same order and event, same id."""
    key = canonical_event_key(tenant_id, gateway, order_id, event_name)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_event_id(value: str) -> bool:
    """True for a well-formed event id (64 lowercase hex characters)."""
    return bool(_EVENT_ID.fullmatch(value))
