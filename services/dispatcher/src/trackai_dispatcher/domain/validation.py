"""Meta's documented rules for one server event, checked before it joins a batch: one invalid
event makes Meta reject the whole request, so it must be dead-lettered alone instead.

Age is not checked here: an event past the 7-day limit is expired, not invalid
(:func:`trackai_dispatcher.domain.model.is_expired`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from trackai_dispatcher.domain.conversion import HASHED_KEYS, ServerEvent, UserData

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
#: Key sets too broad to match anyone; an event whose keys all fall within one is refused.
TOO_BROAD_KEY_SETS = (
    frozenset({"ct", "country", "st", "zp", "ge", "client_user_agent"}),
    frozenset({"db", "client_user_agent"}),
    frozenset({"fn", "ge"}),
    frozenset({"ln", "ge"}),
)
#: Seconds an event may lie in the future (clock skew), beyond which Meta refuses it.
FUTURE_TOLERANCE_S = 60

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FBC = re.compile(r"fb\.\d+\.\d{13}\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?")
_FBP = re.compile(r"fb\.\d+\.\d{13}\.\d+(\.[A-Za-z0-9_-]+)?")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")

#: Active ISO 4217 codes. Meta's list; kept here rather than imported from the sandbox, whose
#: copy is the fake's independent reading of the same contract.
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


@dataclass(frozen=True)
class Invalid:
    """Why an event cannot be sent: ``rule`` is stable, ``detail`` names the field."""

    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def validate(event: ServerEvent, now: float) -> Invalid | None:
    """The first rule ``event`` breaks, in Meta's order, or None when Meta would accept it."""
    for check in (_required, _event_time, _user_data, _custom_data):
        problem = check(event, now)
        if problem is not None:
            return problem
    return None


def _required(event: ServerEvent, _: float) -> Invalid | None:  # noqa: PLR0911
    if not event.event_name:
        return Invalid("required", "event_name is required")
    if not event.event_id:
        return Invalid("required", "event_id is required (deduplication with the pixel)")
    if not event.action_source:
        return Invalid("required", "action_source is required")
    if event.action_source not in ACTION_SOURCES:
        return Invalid(
            "action_source", f"action_source {event.action_source!r} is not one of Meta's"
        )
    if event.user_data is None:
        return Invalid("required", "user_data is required")
    if event.action_source == "website":
        if not event.event_source_url:
            return Invalid("required", "event_source_url is required for website events")
        if not event.user_data.client_user_agent:
            return Invalid("required", "user_data.client_user_agent is required for website events")
    return None


def _event_time(event: ServerEvent, now: float) -> Invalid | None:
    if event.event_time <= 0:
        return Invalid("required", "event_time is required (Unix seconds)")
    if event.event_time - now > FUTURE_TOLERANCE_S:
        return Invalid(
            "event_time", "event_time is in the future (Unix seconds expected, not milliseconds)"
        )
    return None


def _user_data(event: ServerEvent, _: float) -> Invalid | None:
    user = event.user_data or UserData()  # (none: _required refused it already)
    present: set[str] = set()
    for key in HASHED_KEYS:
        values = user.hashed.get(key, ())
        for position, value in enumerate(values):
            if not _SHA256.fullmatch(value):
                return Invalid(
                    "hashed_key",
                    f"user_data.{key}[{position}] is not a SHA-256 digest (64 lowercase hex)",
                )
        if values:
            present.add(key)
    if user.external_id:
        present.add("external_id")
    for key in ("client_ip_address", "client_user_agent", "fbc", "fbp"):
        if getattr(user, key):
            present.add(key)
    if user.fbc and not _FBC.fullmatch(user.fbc):
        return Invalid("fbc", "user_data.fbc is not fb.<index>.<creation ms>.<fbclid>")
    if user.fbp and not _FBP.fullmatch(user.fbp):
        return Invalid("fbp", "user_data.fbp is not fb.<index>.<creation ms>.<random>")
    if user.client_ip_address:
        try:
            ipaddress.ip_address(user.client_ip_address)
        except ValueError:
            return Invalid("client_ip_address", "user_data.client_ip_address is not an IP address")
    if not present or any(present <= broad for broad in TOO_BROAD_KEY_SETS):
        return Invalid(
            "customer_information",
            "user_data has no usable match key (or only a combination too broad to match)",
        )
    return None


def _custom_data(event: ServerEvent, _: float) -> Invalid | None:
    data = event.custom_data
    if data.value and not _DECIMAL.fullmatch(data.value):
        return Invalid("value", "custom_data.value is not a plain decimal number")
    if data.currency and data.currency.upper() not in CURRENCIES:
        return Invalid("currency", f"custom_data.currency {data.currency!r} is not ISO 4217")
    if event.event_name == "Purchase" and not (data.value and data.currency):
        return Invalid("purchase_value", "Purchase needs custom_data.value and currency")
    return None
