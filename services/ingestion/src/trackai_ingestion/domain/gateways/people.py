"""The buyer and the tracking of a gateway payload: hashed user data (plaintext never leaves
:func:`hashed_user_data`), campaign tags with personal data redacted, click ids whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trackai_ingestion.domain.collect import CLICK_ID_PATTERNS
from trackai_ingestion.domain.gateways.fields import text
from trackai_ingestion.domain.model import HashedUserData, Tracking
from trackai_kit.addresses import public_ip
from trackai_kit.pii import DateOrder, hash_user_data
from trackai_kit.redaction import redact_text

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
#: What some checkouts write instead of leaving a tracking field out.
_PLACEHOLDERS = frozenset({"null", "undefined", "não informado"})


# -- people and tracking ----------------------------------------------------------------------


def split_name(full_name: str | None) -> tuple[str | None, str | None]:
    """First and last word of a full name (Meta's ``fn`` / ``ln``)."""
    words = (full_name or "").split()
    if not words:
        return None, None
    return words[0], (words[-1] if len(words) > 1 else None)


def hashed_user_data(
    *,
    email: Any = None,
    phone: Any = None,
    first_name: Any = None,
    last_name: Any = None,
    city: Any = None,
    state: Any = None,
    zip_code: Any = None,
    country: Any = None,
    birth_date: Any = None,
    gender: Any = None,
    date_order: DateOrder = "dmy",
) -> HashedUserData:
    """Hash what is present as Meta normalises it; plaintext does not leave this function.

    Phones without a country code are read in ``country`` (the buyer's, or the gateway's
    :attr:`GatewayAdapter.default_country`); with no country, only international numbers count.
    """
    hashed = hash_user_data(
        {
            "em": email,
            "ph": phone,
            "fn": first_name,
            "ln": last_name,
            "ct": city,
            "st": state,
            "zp": zip_code,
            "country": country,
            "db": birth_date,
            "ge": gender,
        },
        default_region=None,
        date_order=date_order,
    )
    return HashedUserData(
        em=hashed.get("em"),
        ph=hashed.get("ph"),
        fn=hashed.get("fn"),
        ln=hashed.get("ln"),
        ct=hashed.get("ct"),
        st=hashed.get("st"),
        zp=hashed.get("zp"),
        country=hashed.get("country"),
        db=hashed.get("db"),
        ge=hashed.get("ge"),
    )


def tracking_from(
    source: Mapping[str, Any] | None,
    *,
    extra_keys: tuple[str, ...] = (),
    aliases: Mapping[str, str] | None = None,
) -> Tracking:
    """Tracking fields found in one object: ``src``, ``sck``, ``utm_*``, fbclid/fbc/fbp, extras.

    ``aliases`` maps a gateway's own key to ours (``_fbp`` -> ``fbp``, ``source`` ->
    ``utm_source``).
    """
    if not isinstance(source, Mapping):
        return Tracking()
    values: dict[str, str] = {}
    for key, raw in source.items():
        value = text(raw)
        if value is None or value.lower() in _PLACEHOLDERS:
            continue
        values[(aliases or {}).get(key, key)] = value
    # Campaign tags and pass-through fields are free text (an e-mail in utm_content): stored with
    # e-mails, phones and documents replaced. Click ids (fbclid, fbc, fbp) are left byte for byte.
    for key in ("src", "sck", *UTM_KEYS, *extra_keys):
        if key in values:
            values[key] = redact_text(values[key])
    return Tracking(
        src=values.get("src"),
        sck=values.get("sck"),
        utm={key: values[key] for key in UTM_KEYS if key in values},
        fbclid=click_id(source, "fbclid", aliases),
        fbc=click_id(source, "fbc", aliases) or click_id(source, "_fbc", aliases),
        fbp=click_id(source, "fbp", aliases) or click_id(source, "_fbp", aliases),
        extra={key: values[key] for key in extra_keys if key in values},
    )


def click_id(source: Mapping[str, Any], name: str, aliases: Mapping[str, str] | None) -> str | None:
    """A click id whole (never cut at :data:`~.fields._MAX_TEXT`), or None when it is not one:
    longer than its documented limit or malformed
    (:data:`~trackai_ingestion.domain.collect.CLICK_ID_PATTERNS`); Meta would match an altered
    value to nobody."""
    keys = [key for key, target in (aliases or {}).items() if target == name] + [name]
    pattern = CLICK_ID_PATTERNS[name.lstrip("_")]
    for key in keys:
        raw = source.get(key)
        if type(raw) is not str:
            continue
        value = raw.strip()
        if value.lower() not in _PLACEHOLDERS and pattern.fullmatch(value):
            return value
    return None


#: Longest checkout URL kept (a longer one is dropped, never cut).
_MAX_URL = 2048


def page_url(value: Any) -> str | None:
    """An ``http(s)`` URL the gateway gives for its checkout page, whole; else None."""
    if type(value) is not str:
        return None
    url = value.strip()
    if len(url) > _MAX_URL or not url.lower().startswith(("https://", "http://")) or " " in url:
        return None
    return url


def client_ip(value: Any) -> str | None:
    """The buyer's address when it is a valid public one, else ``None`` (never sent to Meta)."""
    candidate = text(value)
    return public_ip(candidate) if candidate is not None else None
