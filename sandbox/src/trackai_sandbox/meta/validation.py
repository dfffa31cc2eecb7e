"""Meta's documented rules for a Conversions API ``/events`` payload.

Pure functions: :func:`validate_events` either returns the events or raises the
:class:`~trackai_sandbox.meta.errors.GraphError` Meta would answer. One invalid event rejects the
whole request, as Meta does; the first failing rule of the first failing event is reported.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from trackai_sandbox.meta.errors import (
    PARAMETER_ERROR_TITLE,
    SUBCODE_EVENT_IN_FUTURE,
    SUBCODE_EVENT_TOO_OLD,
    SUBCODE_INSUFFICIENT_CUSTOMER_INFO,
    SUBCODE_INVALID_VALUE,
    SUBCODE_PURCHASE_VALUE,
    SUBCODE_REQUIRED,
    GraphError,
    bad_request_param,
    invalid_parameter,
)

MAX_EVENTS_PER_REQUEST = 1000
MAX_EVENT_AGE_S = 7 * 24 * 3600

ACTION_SOURCES = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)

#: Customer information parameters Meta requires to be SHA-256 hashed.
HASHED_KEYS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge")
#: Sent as they are (never hashed); ``external_id`` may be hashed or not, so any string goes.
PLAIN_KEYS = (
    "external_id",
    "client_ip_address",
    "client_user_agent",
    "fbc",
    "fbp",
    "subscription_id",
    "fb_login_id",
    "lead_id",
    "anon_id",
    "madid",
    "page_id",
    "page_scoped_user_id",
    "ctwa_clid",
    "ig_account_id",
    "ig_sid",
)
#: Key sets too broad to match anyone: an event whose keys all fall in one of them is rejected.
TOO_BROAD_KEY_SETS = (
    frozenset({"ct", "country", "st", "zp", "ge", "client_user_agent"}),
    frozenset({"db", "client_user_agent"}),
    frozenset({"fn", "ge"}),
    frozenset({"ln", "ge"}),
)

_SHA256 = re.compile(r"[0-9a-f]{64}")
# fb.{subdomain index}.{creation time, ms}.{fbclid}[.{appendix}]; the fbclid is case-sensitive.
_FBC = re.compile(r"fb\.\d+\.\d{13}\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?")
# fb.{subdomain index}.{creation time, ms}.{random number}[.{appendix}]
_FBP = re.compile(r"fb\.\d+\.\d{13}\.\d+(\.[A-Za-z0-9_-]+)?")

#: Active ISO 4217 currency codes (Meta compares them case-insensitively).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905 - a code table reads better as text
)


def _path(index: int, *keys: str) -> str:
    return f"$['data'][{index}]" + "".join(f"['{key}']" for key in keys)


def _required(index: int, *keys: str) -> GraphError:
    return invalid_parameter(
        SUBCODE_REQUIRED, PARAMETER_ERROR_TITLE, f"The parameter {_path(index, *keys)} is required."
    )


def _invalid(index: int, keys: tuple[str, ...], reason: str) -> GraphError:
    return invalid_parameter(
        SUBCODE_INVALID_VALUE,
        PARAMETER_ERROR_TITLE,
        f"The parameter {_path(index, *keys)} is invalid: {reason}",
    )


def _present(value: Any) -> bool:
    return value is not None and value not in ("", [])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def parse_data(raw: Any) -> list[Any]:
    """The ``data`` parameter as a list: JSON arrays, or a JSON string of one (form posts)."""
    if raw is None or raw in ("", []):
        raise bad_request_param("The parameter data is required")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise bad_request_param("param data must be an array.") from None
    if not isinstance(raw, list):
        raise bad_request_param("param data must be an array.")
    if not raw:
        raise bad_request_param("The parameter data is required")
    if len(raw) > MAX_EVENTS_PER_REQUEST:
        raise bad_request_param(
            f"param data must be an array with at most {MAX_EVENTS_PER_REQUEST} elements."
        )
    # The official SDKs encode each event as its own JSON string inside the array; Graph
    # decodes those, so the fake does too.
    return [decode_event(item) for item in raw]


def decode_event(item: Any) -> Any:
    if isinstance(item, str):
        try:
            return json.loads(item)
        except ValueError:
            return item
    return item


def validate_events(data: list[Any], now: float, future_tolerance_s: float) -> list[dict[str, Any]]:
    """Check every event; the first violation rejects the whole request."""
    for index, event in enumerate(data):
        if not isinstance(event, Mapping):
            raise bad_request_param(f"param data[{index}] must be an object.")
        _validate_event(index, event, now, future_tolerance_s)
    return [dict(event) for event in data]


def _validate_event(index: int, event: Mapping[str, Any], now: float, tolerance: float) -> None:
    event_name = event.get("event_name")
    if not _present(event_name):
        raise _required(index, "event_name")
    if not isinstance(event_name, str):
        raise _invalid(index, ("event_name",), "it must be a string.")
    _validate_event_time(index, event.get("event_time"), now, tolerance)
    action_source = _validate_action_source(index, event.get("action_source"))
    event_id = event.get("event_id")
    if event_id is not None and not (isinstance(event_id, str) or _is_int(event_id)):
        raise _invalid(index, ("event_id",), "it must be a string.")
    user_data = event.get("user_data")
    if user_data is None:
        raise _required(index, "user_data")
    if not isinstance(user_data, Mapping):
        raise _invalid(index, ("user_data",), "it must be an object.")
    _validate_customer_information(index, user_data)
    _validate_website_fields(index, action_source, event, user_data)
    custom_data = event.get("custom_data")
    if custom_data is not None and not isinstance(custom_data, Mapping):
        raise _invalid(index, ("custom_data",), "it must be an object.")
    _validate_custom_data(index, event_name, custom_data or {})
    _validate_data_processing_options(index, event)


def _validate_action_source(index: int, action_source: Any) -> str:
    if not _present(action_source):
        raise _required(index, "action_source")
    if action_source not in ACTION_SOURCES:
        raise _invalid(
            index,
            ("action_source",),
            f"it must be one of {', '.join(sorted(ACTION_SOURCES))}.",
        )
    return str(action_source)


def _validate_customer_information(index: int, user_data: Mapping[str, Any]) -> None:
    keys = _validate_user_data(index, user_data)
    if not keys or any(keys <= broad for broad in TOO_BROAD_KEY_SETS):
        raise invalid_parameter(
            SUBCODE_INSUFFICIENT_CUSTOMER_INFO,
            "You haven't added sufficient customer information parameter data for this event",
            "This event has no customer information parameters, or a combination of them too "
            "broad to be useful for matching. See the parameter best practices at "
            "developers.facebook.com/docs/marketing-api/conversions-api/best-practices/"
            "#req-rec-params",
        )


def _validate_website_fields(
    index: int, action_source: str, event: Mapping[str, Any], user_data: Mapping[str, Any]
) -> None:
    # Meta documents both as required for website events (the live API has been seen to accept a
    # missing client_user_agent; the sandbox holds clients to the documented contract).
    if action_source == "website":
        if not _present(event.get("event_source_url")):
            raise _required(index, "event_source_url")
        if not _present(user_data.get("client_user_agent")):
            raise _required(index, "user_data", "client_user_agent")
    url = event.get("event_source_url")
    if url is not None and not isinstance(url, str):
        raise _invalid(index, ("event_source_url",), "it must be a string.")


def _validate_event_time(index: int, event_time: Any, now: float, tolerance: float) -> None:
    if event_time is None or event_time == "":
        raise _required(index, "event_time")
    if not _is_int(event_time):
        raise _invalid(index, ("event_time",), "it must be an integer Unix timestamp in seconds.")
    if now - event_time > MAX_EVENT_AGE_S:
        raise invalid_parameter(
            SUBCODE_EVENT_TOO_OLD,
            "Event Timestamp Too Old",
            "The timestamp for this event is too far in the past. Events need to be sent from "
            "your server within 7 days of when they occurred. Enter a timestamp that has "
            "occurred within the last 7 days.",
        )
    if event_time - now > tolerance:
        raise invalid_parameter(
            SUBCODE_EVENT_IN_FUTURE,
            "Event Timestamp In The Future",
            "The timestamp for this event is in the future. Enter the Unix time, in seconds, at "
            "which the event actually occurred.",
        )


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _validate_user_data(index: int, user_data: Mapping[str, Any]) -> frozenset[str]:
    """Check the format of every known key; answer the keys that carry a value."""
    present: set[str] = set()
    for key in HASHED_KEYS:
        value = user_data.get(key)
        if not _present(value):
            continue
        for position, item in enumerate(_strings(value)):
            where = (
                ("user_data", key, str(position)) if isinstance(value, list) else ("user_data", key)
            )
            if not isinstance(item, str) or not _SHA256.fullmatch(item):
                raise _invalid(
                    index,
                    where,
                    "customer information parameters must be normalized and hashed with SHA-256 "
                    "(64 lowercase hexadecimal characters); unhashed values are not accepted.",
                )
        present.add(key)
    for key in PLAIN_KEYS:
        value = user_data.get(key)
        if not _present(value):
            continue
        for item in _strings(value):
            if not isinstance(item, str):
                raise _invalid(index, ("user_data", key), "it must be a string.")
        present.add(key)
    _validate_click_ids(index, user_data)
    ip = user_data.get("client_ip_address")
    if isinstance(ip, str) and ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _invalid(
                index, ("user_data", "client_ip_address"), "it must be an IPv4 or IPv6 address."
            ) from None
    return frozenset(present)


def _validate_click_ids(index: int, user_data: Mapping[str, Any]) -> None:
    fbc = user_data.get("fbc")
    if isinstance(fbc, str) and fbc and not _FBC.fullmatch(fbc):
        raise _invalid(
            index,
            ("user_data", "fbc"),
            "the format must be fb.{subdomainIndex}.{creationTime}.{fbclid}, with the creation "
            "time in milliseconds.",
        )
    fbp = user_data.get("fbp")
    if isinstance(fbp, str) and fbp and not _FBP.fullmatch(fbp):
        raise _invalid(
            index,
            ("user_data", "fbp"),
            "the format must be fb.{subdomainIndex}.{creationTime}.{randomNumber}, with the "
            "creation time in milliseconds.",
        )


def _validate_custom_data(index: int, event_name: str, custom_data: Mapping[str, Any]) -> None:
    value = custom_data.get("value")
    currency = custom_data.get("currency")
    if value is not None and not _is_number(value):
        raise _invalid(index, ("custom_data", "value"), "it must be a number.")
    if currency is not None and (
        not isinstance(currency, str) or currency.upper() not in CURRENCIES
    ):
        raise _invalid(
            index, ("custom_data", "currency"), "it must be a valid ISO 4217 currency code."
        )
    if event_name == "Purchase" and (value is None or currency is None):
        raise invalid_parameter(
            SUBCODE_PURCHASE_VALUE,
            "Purchase event is missing value or currency",
            "Purchase events must include custom_data.value (a number) and "
            "custom_data.currency (an ISO 4217 currency code).",
        )


def _validate_data_processing_options(index: int, event: Mapping[str, Any]) -> None:
    options = event.get("data_processing_options")
    if options is None:
        return
    if not isinstance(options, list) or any(option != "LDU" for option in options):
        raise _invalid(index, ("data_processing_options",), 'it must be [] or ["LDU"].')
    for key in ("data_processing_options_country", "data_processing_options_state"):
        value = event.get(key)
        if value is not None and not _is_int(value):
            raise _invalid(index, (key,), "it must be an integer.")
