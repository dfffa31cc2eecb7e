"""In-memory Cloudflare account of the fake: tokens, zones, DNS records and per-token rate windows.

Memory is the right store for a fake external system; all mutation happens on the server's event
loop, so no locking is needed.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

TokenStatus = Literal["active", "disabled", "expired"]


def cf_timestamp(ts: float) -> str:
    """Cloudflare's timestamp format: ISO 8601, microseconds, ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ApiToken:
    token: str
    #: Zone ids this token may edit; None means every zone of the account.
    zones: set[str] | None = None
    status: TokenStatus = "active"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Zone:
    id: str
    name: str
    account_id: str
    created_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": "active",
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "account": {"id": self.account_id, "name": "Track AI Sandbox"},
            "created_on": cf_timestamp(self.created_at),
            "modified_on": cf_timestamp(self.created_at),
        }


@dataclass
class DnsRecord:
    id: str
    zone_id: str
    type: str
    name: str
    content: str
    ttl: int = 1
    proxied: bool = False
    comment: str | None = None
    tags: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    priority: int | None = None
    created_on: float = field(default_factory=time.time)
    modified_on: float = field(default_factory=time.time)
    comment_modified_on: float | None = None
    tags_modified_on: float | None = None

    @property
    def proxiable(self) -> bool:
        return self.type in ("A", "AAAA", "CNAME")

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "content": self.content,
            "proxiable": self.proxiable,
            "proxied": self.proxied,
            "ttl": self.ttl,
            "settings": dict(self.settings),
            "meta": {},
            "comment": self.comment,
            "tags": list(self.tags),
            "created_on": cf_timestamp(self.created_on),
            "modified_on": cf_timestamp(self.modified_on),
        }
        if self.priority is not None:
            answer["priority"] = self.priority
        if self.comment_modified_on is not None:
            answer["comment_modified_on"] = cf_timestamp(self.comment_modified_on)
        if self.tags_modified_on is not None:
            answer["tags_modified_on"] = cf_timestamp(self.tags_modified_on)
        return answer


class RateWindow:
    """Cloudflare's per-token limit: N calls per window; past it, every call is refused for
    a whole window (the documented "blocked for the next five minutes")."""

    def __init__(self) -> None:
        self.calls: deque[float] = deque()
        self.blocked_until = 0.0

    def admit(self, now: float, limit: int, window_s: float) -> float | None:
        """None when admitted, else the seconds to wait."""
        if now < self.blocked_until:
            return self.blocked_until - now
        while self.calls and self.calls[0] <= now - window_s:
            self.calls.popleft()
        if len(self.calls) >= limit:
            self.blocked_until = now + window_s
            return window_s
        self.calls.append(now)
        return None


class CloudflareState:
    """Everything the fake Cloudflare account holds."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.reset()

    def reset(self) -> None:
        self.tokens: dict[str, ApiToken] = {}
        self.zones: dict[str, Zone] = {}
        self.records: dict[str, DnsRecord] = {}
        self.windows: dict[str, RateWindow] = {}

    def add_zone(self, name: str, zone_id: str | None = None) -> Zone:
        zone = Zone(id=zone_id or uuid.uuid4().hex, name=name.lower(), account_id=self.account_id)
        self.zones[zone.id] = zone
        return zone

    def add_token(self, token: str, zones: set[str] | None, status: TokenStatus) -> ApiToken:
        entry = ApiToken(token=token, zones=zones, status=status)
        self.tokens[token] = entry
        return entry

    def zone_records(self, zone_id: str) -> list[DnsRecord]:
        return [r for r in self.records.values() if r.zone_id == zone_id]

    def resolve(self, name: str) -> list[dict[str, str]]:
        """What a public resolver answers for ``name``: a DNS-only CNAME shows its target; a
        proxied record shows Cloudflare's anycast addresses instead of the origin."""
        wanted = name.lower().rstrip(".")
        answers: list[dict[str, str]] = []
        for record in self.records.values():
            if record.name != wanted:
                continue
            if record.proxied:
                answers += [
                    {"type": "A", "data": "104.21.48.1"},
                    {"type": "A", "data": "172.67.160.1"},
                ]
            else:
                answers.append({"type": record.type, "data": record.content})
        return answers
