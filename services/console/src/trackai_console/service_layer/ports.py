"""What the console's use cases need: account storage, password hashing, and the other
services' read APIs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from trackai_console.domain.accounts import Credentials, Role, User
from trackai_console.domain.dead_letters import DeadLetter, ReplayOutcome
from trackai_console.domain.events import Attempt, Conversion, Delivery, Explanation, Match
from trackai_console.domain.health import Coverage, CredentialRefusal, DestinationHealth
from trackai_console.domain.quality import DayQuality
from trackai_console.domain.wizard import (
    Check,
    CompanyForm,
    MetaForm,
    Run,
    Setup,
    TestEvent,
    WizardRecord,
)


class AccountStore(Protocol):
    async def create_user(
        self,
        *,
        email_hash: str,
        role: Role,
        tenant_id: uuid.UUID | None,
        password_hash: str | None,
    ) -> User:
        """Raises DuplicateAccount when the e-mail has an account."""
        ...

    async def credentials(self, email_hash: str) -> Credentials | None: ...

    async def list_users(self, tenant_id: uuid.UUID | None) -> list[User]: ...

    async def disable_user(self, email_hash: str) -> User | None:
        """Disable the account and delete its sessions; None when unknown."""
        ...

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...

    async def recent_failures(
        self, email_hash: str, client_ip: str | None, since: datetime
    ) -> tuple[int, int]:
        """Failed sign-ins since ``since``: (for this e-mail, from this address)."""
        ...

    async def record_attempt(
        self, email_hash: str, client_ip: str | None, *, succeeded: bool
    ) -> None: ...

    async def create_session(
        self, id_hash: str, user_id: uuid.UUID, expires_at: datetime
    ) -> None: ...

    async def session_user(self, id_hash: str, now: datetime) -> User | None:
        """The enabled user of an unexpired session."""
        ...

    async def delete_session(self, id_hash: str) -> None: ...

    async def create_password_link(
        self, token_hash: str, user_id: uuid.UUID, expires_at: datetime
    ) -> None: ...

    async def password_link_user(self, token_hash: str, now: datetime) -> User | None:
        """The enabled user of an unused, unexpired link."""
        ...

    async def use_password_link(self, token_hash: str, now: datetime, password_hash: str) -> bool:
        """Atomically mark the link used, set the password and end the user's sessions; False
        when the link is unknown, used or expired."""
        ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...


class SourceUnavailable(Exception):
    """Another service's API did not answer (down or too slow)."""


@dataclass(frozen=True)
class ConversionPage:
    conversions: list[Conversion]
    next_token: str


@dataclass(frozen=True)
class DeliveryPage:
    """A page of the dispatcher's events in some states: (conversion id, delivery), newest
    first. Events recorded before the dispatcher kept their conversion are left out."""

    deliveries: list[tuple[str, Delivery]]
    next_token: str


@dataclass(frozen=True)
class MatchPage:
    """A page of the matcher's registered events: (conversion id, match), newest first."""

    matches: list[tuple[str, Match]]
    next_token: str


@dataclass(frozen=True)
class Funnel:
    id: str
    name: str


@dataclass(frozen=True)
class TenantSummary:
    id: str
    name: str
    slug: str = ""
    #: Gateways with a stored credential, and whether a Meta pixel and token are stored.
    gateways: tuple[str, ...] = ()
    meta_configured: bool = False


@dataclass(frozen=True)
class TenantPage:
    tenants: list[TenantSummary]
    next_token: str


class EventSource(Protocol):
    """The other services' read APIs, always called with the tenant of the signed-in session
    (or the operator's chosen tenant). Absent and another tenant's records both read as None."""

    async def conversions(
        self,
        tenant_id: str,
        *,
        statuses: tuple[str, ...],
        since: datetime | None,
        gateway: str,
        order_id: str,
        funnel_id: str,
        page_size: int,
        page_token: str,
    ) -> ConversionPage: ...

    async def conversion(self, tenant_id: str, conversion_id: str) -> Conversion | None: ...

    async def conversions_by_id(
        self, tenant_id: str, conversion_ids: list[str]
    ) -> dict[str, Conversion]:
        """The tenant's conversions among ``conversion_ids``, in one call (id → conversion)."""
        ...

    async def delivery_page(
        self,
        tenant_id: str,
        *,
        states: tuple[str, ...],
        since: datetime | None,
        funnel_id: str,
        stage: str,
        page_size: int,
        page_token: str,
    ) -> DeliveryPage:
        """The dispatcher's events in ``states`` (its words: "pending", "sent", ...)."""
        ...

    async def match_page(
        self,
        tenant_id: str,
        *,
        stage: str,
        since: datetime | None,
        gateway: str,
        funnel_id: str,
        page_size: int,
        page_token: str,
    ) -> MatchPage:
        """The matcher's registered events at ``stage`` ("" for every stage)."""
        ...

    async def match(self, tenant_id: str, conversion_id: str) -> Explanation | None: ...

    async def delivery(self, tenant_id: str, event_id: str) -> Delivery | None: ...

    async def matches(self, tenant_id: str, conversion_ids: list[str]) -> dict[str, Match]:
        """The match of each conversion that has one, in one call (conversion id → match)."""
        ...

    async def deliveries(self, tenant_id: str, event_ids: list[str]) -> dict[str, Delivery]:
        """The delivery of each known event, in one call (event id → delivery)."""
        ...

    async def attempts(self, tenant_id: str, event_id: str) -> list[Attempt]: ...

    async def funnels(self, tenant_id: str) -> list[Funnel]: ...

    async def tenants(self) -> list[TenantSummary]: ...

    async def tenant_page(self, page_token: str, page_size: int) -> TenantPage:
        """One page of every tenant, by the provisioner's order (operators only)."""
        ...


@dataclass(frozen=True)
class DeadLetterPage:
    dead_letters: list[DeadLetter]
    next_token: str


class DeadLetterQueue(Protocol):
    """The dispatcher's DLQ API, scoped to one tenant by the caller."""

    async def dead_letters(
        self, tenant_id: str, *, reason: str, since: datetime | None, page_token: str
    ) -> DeadLetterPage: ...

    async def owns(self, tenant_id: str, event_id: str) -> bool:
        """Whether the event is this tenant's (replay by id is not tenant-scoped upstream)."""
        ...

    async def replay_event(self, event_id: str, requested_by: str) -> ReplayOutcome:
        """Replays one event; an event that cannot be replayed counts as refused."""
        ...

    async def replay_matching(
        self, tenant_id: str, *, reason: str, since: datetime | None, requested_by: str
    ) -> ReplayOutcome: ...


class MatchStats(Protocol):
    async def daily(self, tenant_id: str, start_day: str, end_day: str) -> list[DayQuality]:
        """One entry per UTC day in [start_day, end_day], oldest first."""
        ...


class DeliveryHealth(Protocol):
    """The dispatcher's view of delivery to Meta."""

    async def destinations(self, tenant_id: str | None) -> list[DestinationHealth]:
        """Destinations needing attention: one tenant's, or every tenant's for None."""
        ...

    async def coverage(self, tenant_id: str, start: datetime, end: datetime) -> Coverage:
        """How many of the tenant's events (by event time) carried each parameter."""
        ...


@dataclass(frozen=True)
class WebhookReport:
    refusals: list[CredentialRefusal]
    last_received_at: datetime | None


class WebhookActivity(Protocol):
    """Ingestion's record of the webhooks a tenant received and refused."""

    async def since(self, tenant_id: str, since: datetime) -> WebhookReport: ...


class EmqHistory(Protocol):
    """The console's own per-day EMQ history (``console.emq_daily``)."""

    async def save(self, tenant_id: str, days: Sequence[DayQuality]) -> None:
        """Replace the stored figures of these days (a snapshot, safe to repeat)."""
        ...

    async def days(self, tenant_id: str, start: date, end: date) -> list[DayQuality]:
        """The stored days in [start, end], oldest first."""
        ...

    async def averages(
        self, tenant_ids: Sequence[str], start: date
    ) -> dict[str, tuple[int, float]]:
        """Per tenant with events since ``start`` (inclusive): (events, weighted EMQ average)."""
        ...


class StatusSink(Protocol):
    """Where the status feed hands each update (the live hub). ``key`` identifies the update
    across console replicas (its message id): every replica receives it, one history keeps it."""

    async def publish(
        self,
        tenant_id: str,
        *,
        entity: str,
        entity_id: str,
        status: str,
        detail: str,
        stage: str = "",
        score: float = 0.0,
        key: str = "",
    ) -> None: ...


class HistoryUnavailable(Exception):
    """The shared live history cannot be reached; pages go on live-only."""


class StatusHistory(Protocol):
    """Each tenant's recent updates, shared by every console replica, so a browser resumes
    (``Last-Event-ID``) on whichever replica it reconnects to. Raises ``HistoryUnavailable``."""

    async def append(self, tenant_id: str, key: str, fields: Mapping[str, str]) -> str:
        """Keep the update under a new id, or return the id it already has when another
        replica kept it first (same ``key``)."""
        ...

    async def after(self, tenant_id: str, last_id: str) -> list[tuple[str, dict[str, str]]]:
        """The tenant's kept updates after ``last_id``, oldest first."""
        ...

    def is_id(self, value: str) -> bool:
        """Whether ``value`` has the shape of this history's ids."""
        ...


class UpstreamRefused(Exception):
    """Another service refused a change (a precondition, a duplicate, an invalid value); the
    message says why in pt-BR for the seller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SetupRegistry(Protocol):
    """The provisioner's registry and provisioning APIs, as the setup wizard uses them. Always
    called with the signed-in session's tenant; secrets go in and never come back."""

    async def setup(self, tenant_id: str, funnel_slug: str) -> Setup | None:
        """The tenant's registration with secrets masked; None when the tenant is unknown."""
        ...

    async def save_company(self, tenant_id: str, funnel_slug: str, form: CompanyForm) -> str:
        """Rename the tenant and create or update the funnel; returns the funnel's slug."""
        ...

    async def set_gateway(self, tenant_id: str, gateway: str, secret: str) -> None: ...

    async def set_meta(self, tenant_id: str, funnel_slug: str, form: MetaForm) -> None:
        """Store the pixel and token (only when a token is given) and the funnel's test code."""
        ...

    async def clear_test_code(self, tenant_id: str, funnel_slug: str) -> None: ...

    async def provision(self, tenant_id: str, funnel_slug: str) -> str:
        """Run (or resume) the saga to its end; returns the run's final status."""
        ...

    async def run(self, tenant_id: str, funnel_slug: str) -> Run | None:
        """The latest run of the funnel; None before the first."""
        ...

    async def send_test_event(self, run_id: str) -> TestEvent: ...

    async def publish(self, run_id: str, approved_by: str, note: str) -> str:
        """Approve and publish; returns the published GTM version. UpstreamRefused (with the
        reason) while no test event succeeded."""
        ...


class SetupChecks(Protocol):
    """The setup agent's read-only tools (AgentService.RunCheck)."""

    async def check(
        self, tenant_id: str, funnel_slug: str, tool: str, since: datetime
    ) -> Check: ...


class WizardStore(Protocol):
    async def load(self, tenant_id: uuid.UUID) -> WizardRecord | None: ...

    async def save(self, record: WizardRecord) -> None: ...

    async def load_many(self, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, WizardRecord]:
        """The wizards of these tenants, in one read (tenants that never began are absent)."""
        ...
