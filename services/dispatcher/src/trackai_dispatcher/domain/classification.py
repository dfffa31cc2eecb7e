"""Meta's answer to one POST, classified by HTTP status, error code and subcode (never by the
message): sent, retry later, reject the payload, or a destination-wide refusal."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from trackai_dispatcher.domain.model import AttemptOutcome

#: Codes Meta documents as temporary: unknown/service errors and the rate limits.
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 341, 613}) | frozenset(range(80000, 80015))
TOKEN_CODE = 190
PAYLOAD_CODE = 100
#: 100 with this subcode is "object does not exist / no permission": the pixel, not the payload.
UNKNOWN_OBJECT_SUBCODE = 33
#: Permissions (10, 200-299) and "unknown method" (3): the destination is refused as a whole.
DESTINATION_CODES = frozenset({3, 10}) | frozenset(range(200, 300))


class Verdict(enum.Enum):
    SENT = "sent"
    #: Try again later (5xx, transient and rate-limit codes, unreadable 5xx bodies).
    RETRYABLE = "retryable"
    #: No answer in time, or the connection failed.
    TIMEOUT = "timeout"
    #: Meta refused the payload (code 100): some event in the request is invalid.
    PAYLOAD = "payload"
    #: The access token is invalid or expired (190).
    TOKEN = "token"  # noqa: S105 - a verdict name, not a secret
    #: Permissions, unknown pixel, or an unrecognised refusal: no retry will help.
    DESTINATION = "destination"

    @property
    def breaker_failure(self) -> bool:
        """Whether this answer counts against the destination (a bad payload does not)."""
        return self not in (Verdict.SENT, Verdict.PAYLOAD)

    @property
    def outcome(self) -> AttemptOutcome:
        return {
            Verdict.SENT: AttemptOutcome.SENT,
            Verdict.RETRYABLE: AttemptOutcome.RETRYABLE,
            Verdict.TIMEOUT: AttemptOutcome.TIMEOUT,
        }.get(self, AttemptOutcome.PERMANENT)


@dataclass(frozen=True)
class MetaAnswer:
    """What came back from one POST; ``http_status`` is None when nothing came back."""

    http_status: int | None
    latency_ms: float
    body: dict[str, Any] | None = None
    #: Set when no answer arrived: the exception's class and message.
    transport_error: str | None = None
    trace_header: str | None = None

    @property
    def error(self) -> dict[str, Any]:
        error = (self.body or {}).get("error")
        return error if isinstance(error, dict) else {}

    @property
    def code(self) -> int | None:
        return _int(self.error.get("code"))

    @property
    def subcode(self) -> int | None:
        return _int(self.error.get("error_subcode"))

    @property
    def is_transient(self) -> bool | None:
        value = self.error.get("is_transient")
        return value if isinstance(value, bool) else None

    @property
    def fbtrace_id(self) -> str | None:
        value = self.error.get("fbtrace_id") or (self.body or {}).get("fbtrace_id")
        return str(value) if value else self.trace_header

    @property
    def events_received(self) -> int | None:
        return _int((self.body or {}).get("events_received"))

    @property
    def message(self) -> str | None:
        if self.transport_error:
            return self.transport_error
        message = self.error.get("message")
        if message:
            return str(message)
        if self.http_status is not None and self.http_status >= 300 and self.body is None:
            return f"HTTP {self.http_status} without a Graph error body"
        return None


def classify(answer: MetaAnswer) -> Verdict:  # noqa: PLR0911 - one branch per documented class
    status = answer.http_status
    if status is None:
        return Verdict.TIMEOUT
    if 200 <= status < 300:
        return Verdict.SENT if answer.events_received is not None else Verdict.RETRYABLE
    code = answer.code
    if code is None:
        # Meta's edge answers some outages with HTML; only a server-side status means "later".
        return Verdict.RETRYABLE if status >= 500 or status == 429 else Verdict.DESTINATION
    if answer.is_transient or code in RETRYABLE_CODES:
        return Verdict.RETRYABLE
    if code == TOKEN_CODE:
        return Verdict.TOKEN
    if code == PAYLOAD_CODE:
        if answer.subcode == UNKNOWN_OBJECT_SUBCODE:
            return Verdict.DESTINATION
        return Verdict.PAYLOAD
    if code in DESTINATION_CODES:
        return Verdict.DESTINATION
    return Verdict.RETRYABLE if status >= 500 else Verdict.DESTINATION


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
