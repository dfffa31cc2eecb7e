"""The dispatcher's own picture of a conversion to send: one Meta server event and where it goes.

Built from the matcher's ``DispatchRequest`` by the broker adapter (the wire format stays at the
edge); the service layer and the validation rules read only these values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The user_data keys Meta wants as lists of SHA-256 digests.
HASHED_KEYS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge")


@dataclass(frozen=True, slots=True)
class UserData:
    #: Hashed keys (``HASHED_KEYS``) that carry values, each with its digests in order.
    hashed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    external_id: tuple[str, ...] = ()
    client_ip_address: str = ""
    client_user_agent: str = ""
    fbc: str = ""
    fbp: str = ""


@dataclass(frozen=True, slots=True)
class CustomData:
    value: str = ""
    currency: str = ""


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """The fields of Meta's server event the delivery rules read (empty string when unset)."""

    event_id: str
    event_name: str = ""
    event_time: int = 0
    action_source: str = ""
    event_source_url: str = ""
    #: None when the event has no user_data at all (Meta requires one).
    user_data: UserData | None = None
    custom_data: CustomData = CustomData()


@dataclass(frozen=True, slots=True)
class Conversion:
    """One event to deliver to one tenant's pixel, with what the matcher knew about it."""

    tenant_id: str
    pixel_id: str
    funnel_id: str
    conversion_id: str
    event: ServerEvent
    #: The event in Meta's JSON form (field names as Meta spells them; stored, then posted).
    payload: Mapping[str, Any]
    #: The match stage's name (``MATCH_STAGE_...``), empty when unspecified.
    match_stage: str = ""
    match_score: float = 0.0
    emq: float = 0.0

    @property
    def event_id(self) -> str:
        return self.event.event_id
