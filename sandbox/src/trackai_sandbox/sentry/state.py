"""What the Sentry fake received: one record per envelope item, kept in memory (bounded)."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


class EnvelopeError(ValueError):
    """The body is not a well-formed envelope (Sentry answers 400)."""


@dataclass(frozen=True)
class Item:
    """One envelope item: its header, and its payload as JSON when it is JSON."""

    id: int
    received_at: float
    project_id: str
    public_key: str
    envelope_header: dict[str, Any]
    header: dict[str, Any]
    payload: Any

    @property
    def type(self) -> str:
        return str(self.header.get("type", ""))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at,
            "project_id": self.project_id,
            "public_key": self.public_key,
            "type": self.type,
            "envelope_header": self.envelope_header,
            "header": self.header,
            "payload": self.payload,
        }


def _json_line(raw: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise EnvelopeError(f"{what} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise EnvelopeError(f"{what} must be a JSON object")
    return parsed


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Split an envelope (https://develop.sentry.dev/sdk/data-model/envelopes/) into its header
    and ``(item header, payload bytes)`` pairs. A payload is ``length`` bytes when the item header
    gives one, else the rest of the line."""
    head, _, rest = body.partition(b"\n")
    envelope_header = _json_line(head, "envelope header")
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        header = _json_line(line, "item header")
        if "type" not in header:
            raise EnvelopeError("item header without a type")
        length = header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            if not isinstance(length, int) or length < 0 or length > len(rest):
                raise EnvelopeError(f"item length {length!r} does not fit the envelope")
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        items.append((header, payload))
    return envelope_header, items


@dataclass
class SentryState:
    """Received items, oldest dropped first past ``max_items``."""

    max_items: int = 10_000
    items: deque[Item] = field(default_factory=deque)
    envelopes: int = 0
    _next_id: int = 1

    def store(self, project_id: str, public_key: str, body: bytes) -> str | None:
        envelope_header, parsed = parse_envelope(body)
        self.envelopes += 1
        event_id = envelope_header.get("event_id")
        for header, raw in parsed:
            try:
                payload: Any = json.loads(raw)
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            self.items.append(
                Item(self._next_id, time.time(), project_id, public_key, envelope_header, header,
                     payload)
            )  # fmt: skip
            self._next_id += 1
            if isinstance(payload, dict) and event_id is None:
                event_id = payload.get("event_id")
            while len(self.items) > self.max_items:
                self.items.popleft()
        return str(event_id) if event_id else None

    def reset(self) -> None:
        self.items.clear()
        self.envelopes = 0
