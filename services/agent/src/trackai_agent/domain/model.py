"""Value types of the setup agent: what a tool answers, and what the ports hand back to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class ToolResult:
    """One tool's verdict: ``message`` says what was found and ``action`` the concrete next step,
    both in Brazilian Portuguese for the seller; ``details`` is for machines (console cards)."""

    status: Status
    message: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "error"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "action": self.action,
            "details": self.details,
        }


@dataclass(frozen=True)
class SetupContext:
    """What the tools need to know about the seller's setup, read from the provisioner."""

    tenant_id: str
    funnel_slug: str
    landing_url: str
    pixel_id: str
    meta_token: str = field(repr=False)
    test_event_code: str
    gateways: tuple[str, ...]


@dataclass(frozen=True)
class TokenDebug:
    """Graph ``debug_token`` data (``error_*`` set when Graph calls the token invalid)."""

    is_valid: bool
    app_id: str = ""
    application: str = ""
    type: str = ""
    scopes: tuple[str, ...] = ()
    expires_at: int = 0
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str = ""


@dataclass(frozen=True)
class PixelRead:
    """Reading the pixel node with the seller's token: its name, or Graph's error."""

    readable: bool
    name: str = ""
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str = ""


@dataclass(frozen=True)
class WebhookActivity:
    """Verified webhooks of one gateway since a moment (ingestion's read API)."""

    gateway: str
    verified: int
    last_received: datetime | None = None
    #: Receipts per outcome ("accepted", "test", "ignored", ...).
    by_outcome: dict[str, int] = field(default_factory=dict)
    #: Requests refused with 401, per credential that did not match ("kiwify_signature", ...).
    refused: dict[str, int] = field(default_factory=dict)
    last_refused: datetime | None = None


@dataclass(frozen=True)
class Hop:
    url: str
    status: int
    location: str = ""


@dataclass(frozen=True)
class TlsInfo:
    valid: bool
    not_after: datetime | None = None
    error: str = ""


@dataclass(frozen=True)
class FetchedPage:
    """A page fetched hop by hop; ``body`` is cut at the size limit."""

    final_url: str
    status: int
    hops: tuple[Hop, ...]
    body: str
    ttfb_ms: float
    tls: TlsInfo | None = None
    truncated: bool = False


@dataclass(frozen=True)
class Snippet:
    platform: str
    title: str
    where: str
    content: str


@dataclass(frozen=True)
class TestEventSent:
    run_id: str
    event_id: str
    events_received: int
    fbtrace_id: str
    test_event_code: str


class DependencyError(Exception):
    """A service or site the agent depends on could not answer; ``detail`` says which and why."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency}: {detail}")
        self.dependency = dependency
        self.detail = detail


class NotReady(Exception):
    """The setup is not at the point a tool needs (no provisioning run, no test code...)."""


class FetchRefused(Exception):
    """The URL was not fetched: it is not public (SSRF guard), not http(s), or too large."""


# --- conversation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class LlmReply:
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LlmFailure(Exception):
    """The model did not answer usefully (error status, timeout, malformed reply)."""


@dataclass
class SessionRecord:
    id: str
    tenant_id: str
    funnel_slug: str
    state: str
    step: str
    consecutive_failures: int
    webhook_verified: bool
    setup_started_at: datetime
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: datetime | None = None


@dataclass
class Entry:
    """One transcript entry before it is stored (content and tool data are redacted on write)."""

    role: str
    content: str = ""
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_arguments: dict[str, Any] | None = None
    tool_result: dict[str, Any] | None = None
    outcome: str | None = None
    duration_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    event_id: str | None = None
    seq: int = 0
    created_at: datetime | None = None


@dataclass
class Escalation:
    id: str
    session_id: str
    tenant_id: str
    step: str
    reason: str
    failure_count: int
    state: str
    summary: dict[str, Any] = field(default_factory=dict)
    transcript_url: str = ""
    created_at: datetime | None = None
    acknowledged_by: str | None = None
