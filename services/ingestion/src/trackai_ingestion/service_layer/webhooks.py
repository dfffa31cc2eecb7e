"""Receive one checkout webhook: find the tenant's credential, authenticate the raw bytes, limit
the rate, normalise, and store durably before answering.

Every outcome is a :class:`WebhookOutcome` (status, JSON body, headers); nothing here knows HTTP
frameworks. The order of the checks is deliberate: a refused credential is decided before the
body is interpreted and before the request counts against the tenant's rate, so an
unauthenticated flood cannot use up a tenant's budget and delay its real sales.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai_ingestion.domain.gateways import ADAPTERS, GatewayAdapter, WebhookRequest
from trackai_ingestion.domain.gateways.fields import (
    sha256_hex,
)
from trackai_ingestion.domain.gateways.signatures import (
    RELAY_SIGNATURE_TOLERANCE_S,
    verify_relay_signature,
)
from trackai_ingestion.domain.model import (
    Accept,
    AuthenticationFailed,
    Ignore,
    InvalidPayload,
    MalformedBody,
)
from trackai_ingestion.domain.redaction import redact_body
from trackai_ingestion.service_layer.ports import (
    AuthFailureRecorder,
    ConversionWriter,
    RateLimiter,
    Receipt,
    RegistryUnavailable,
    StorageUnavailable,
    TenantConfigs,
)
from trackai_ingestion.service_layer.windows import UnknownTenantLimit, WindowCounter
from trackai_ingestion.telemetry import (
    ATTR_GATEWAY,
    ATTR_REASON,
    ATTR_STATUS,
    WEBHOOK_DURATION,
    WEBHOOKS,
    WEBHOOKS_REFUSED,
    webhook_outcome,
)
from trackai_kit.logging import get_logger

log = get_logger(__name__)
#: Seconds a gateway is asked to wait when we cannot decide now (registry or database down).
RETRY_LATER_S = 30
#: Request headers kept in receipts: never credentials, never the buyer's data.
_KEPT_HEADERS = ("content-type", "content-length", "user-agent", "x-request-id")
#: Refused credentials for one tenant within a minute that make one "burst" log line.
AUTH_BURST_THRESHOLD = 20
BURST_WINDOW_S = 60.0


@dataclass(frozen=True)
class WebhookOutcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, code: str, detail: str, **extra: Any) -> WebhookOutcome:
    return WebhookOutcome(status, {"error": code, "detail": detail, **extra})


def _retry_later(code: str, why: str) -> WebhookOutcome:
    return WebhookOutcome(
        503, {"error": code, "detail": f"{why}; retry later"}, {"Retry-After": str(RETRY_LATER_S)}
    )


class _Stop(Exception):
    """Ends the handling of a request early with ``outcome``."""

    def __init__(self, outcome: WebhookOutcome) -> None:
        super().__init__(outcome.body.get("error"))
        self.outcome = outcome


def unknown_gateway(gateway: str) -> WebhookOutcome:
    return _error(
        404,
        "unknown_gateway",
        f"no webhook receiver for gateway {gateway[:40]!r}; "
        f"supported: {', '.join(sorted(ADAPTERS))}",
    )


class WebhookService:
    def __init__(
        self,
        tenants: TenantConfigs,
        limiter: RateLimiter,
        store: ConversionWriter,
        *,
        default_rate_limit: int,
        relay_signature_tolerance_s: float = RELAY_SIGNATURE_TOLERANCE_S,
        accept_legacy_relay_signature: bool = False,
        unknown_tenants: UnknownTenantLimit | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        auth_failures: AuthFailureRecorder | None = None,
    ) -> None:
        self._refusals = auth_failures
        self._tenants = tenants
        self._limiter = limiter
        self._store = store
        self._default_rate_limit = default_rate_limit
        self._signature_tolerance_s = relay_signature_tolerance_s
        self._accept_legacy_signature = accept_legacy_relay_signature
        self._clock = clock
        # One log line per tenant and minute, not one per request, when a flood is refused.
        self._auth_bursts = WindowCounter(BURST_WINDOW_S)
        self._rate_limited = WindowCounter(BURST_WINDOW_S)
        self._unknown_tenants = unknown_tenants

    async def receive(
        self,
        gateway: str,
        tenant_ref: str,
        request: WebhookRequest,
        *,
        source_ip: str | None = None,
    ) -> WebhookOutcome:
        started = time.perf_counter()
        adapter = ADAPTERS.get(gateway)
        if adapter is None:
            answer = unknown_gateway(gateway)
        else:
            answer = await self._receive(adapter, tenant_ref, request, source_ip)
        # Labels from bounded sets only: the receivers' names, outcome classes, error codes.
        label = adapter.name if adapter is not None else "unknown"
        outcome, reason = webhook_outcome(answer.status, answer.body)
        WEBHOOKS.add(1, {"gateway": label, "outcome": outcome, "reason": reason})
        WEBHOOK_DURATION.record(time.perf_counter() - started, {"gateway": label})
        return answer

    async def _receive(
        self,
        adapter: GatewayAdapter,
        tenant_ref: str,
        request: WebhookRequest,
        source_ip: str | None,
    ) -> WebhookOutcome:
        received_at = self._clock()
        try:
            tenant_id, config = await self._tenant(tenant_ref, adapter, source_ip)
            try:
                self._authenticate(
                    adapter,
                    tenant_id,
                    config,
                    request,
                    source_ip=source_ip,
                    received_at=received_at,
                )
            except _Stop as refused:
                credential = refused.outcome.body.get("credential")
                if refused.outcome.status == 401 and credential and self._refusals:
                    # Which credential mismatched, for the setup agent's webhook check.
                    await self._refusals.record(tenant_id, adapter.name, str(credential))
                raise
            await self._within_rate(tenant_id, config)
        except _Stop as stop:
            return stop.outcome
        return await self._interpret_and_store(adapter, tenant_id, request, received_at)

    async def _tenant(
        self, tenant_ref: str, adapter: GatewayAdapter, source_ip: str | None
    ) -> tuple[uuid.UUID, prov.WebhookConfig]:
        try:
            tenant_id = uuid.UUID(tenant_ref)
        except ValueError:
            raise self._unknown(tenant_ref, source_ip) from None
        limit = self._unknown_tenants
        if limit is not None and (wait := limit.retry_after(source_ip, str(tenant_id))):
            WEBHOOKS_REFUSED.add(
                1, {ATTR_STATUS: 429, ATTR_GATEWAY: adapter.name, ATTR_REASON: "unknown_tenants"}
            )
            raise _Stop(
                WebhookOutcome(
                    429,
                    {
                        "error": "too_many_unknown_tenants",
                        "detail": f"more than {limit.per_window} requests for unknown tenants "
                        f"from this address within a minute; retry after {wait} s",
                    },
                    {"Retry-After": str(wait)},
                )
            )
        try:
            config = await self._tenants.get(str(tenant_id))
        except RegistryUnavailable as exc:
            log.warning(
                "tenant registry unavailable; asking the gateway to retry",
                gateway=adapter.name,
                error=str(exc),
            )
            raise _Stop(
                _retry_later("tenant_registry_unavailable", "the tenant registry cannot be reached")
            ) from None
        if config is None:
            raise self._unknown(tenant_ref, source_ip)
        return tenant_id, config

    def _unknown(self, tenant_ref: str, source_ip: str | None) -> _Stop:
        if self._unknown_tenants is not None:
            count = self._unknown_tenants.unknown(source_ip)
            if count == self._unknown_tenants.per_window:
                log.warning(
                    "unknown-tenant budget exhausted; only cached tenants served to this address",
                    source_ip=source_ip,
                    window_s=BURST_WINDOW_S,
                )
        return _Stop(_unknown_tenant(tenant_ref))

    def _authenticate(
        self,
        adapter: GatewayAdapter,
        tenant_id: uuid.UUID,
        config: prov.WebhookConfig,
        request: WebhookRequest,
        *,
        source_ip: str | None,
        received_at: datetime,
    ) -> None:
        credential = next((c for c in config.gateways if c.gateway == adapter.name), None)
        if credential is None or not (credential.secret or credential.signing_secret):
            raise _Stop(
                _error(
                    404,
                    "gateway_not_configured",
                    f"tenant {tenant_id} has no {adapter.display_name} credential; store it with "
                    f"`trackai tenant set-gateway {tenant_id} --gateway {adapter.name} "
                    f"--secret-file -` ({adapter.credential_location})",
                )
            )
        try:
            if credential.signing_secret:
                verify_relay_signature(
                    request,
                    credential.signing_secret,
                    str(tenant_id),
                    now=received_at.timestamp(),
                    tolerance_s=self._signature_tolerance_s,
                    accept_legacy=self._accept_legacy_signature,
                )
            if credential.secret:
                adapter.authenticate(request, credential.secret)
        except AuthenticationFailed as exc:
            # Security log line: who, which credential, from where; never the body.
            log.warning(
                "webhook refused: credential mismatch",
                tenant_id=str(tenant_id),
                gateway=adapter.name,
                credential=exc.credential,
                reason=exc.reason,
                source_ip=source_ip,
                body_bytes=len(request.raw),
            )
            WEBHOOKS_REFUSED.add(
                1, {ATTR_STATUS: 401, ATTR_GATEWAY: adapter.name, ATTR_REASON: exc.reason}
            )
            if self._auth_bursts.hit(str(tenant_id)) == AUTH_BURST_THRESHOLD:
                log.error(
                    "webhook authentication failures burst",
                    tenant_id=str(tenant_id),
                    gateway=adapter.name,
                    refused=AUTH_BURST_THRESHOLD,
                    window_s=BURST_WINDOW_S,
                    last_reason=exc.reason,
                )
            hint = (
                "" if exc.credential == "x_signature" else "; " + adapter.fix_hint(str(tenant_id))
            )
            raise _Stop(
                _error(401, "invalid_credentials", f"{exc}{hint}", credential=exc.credential)
            ) from None
        except MalformedBody as exc:
            # Only for gateways whose credential is inside the body: not authenticated, so
            # nothing is stored.
            raise _Stop(_error(400, "malformed_body", str(exc))) from None

    async def _within_rate(self, tenant_id: uuid.UUID, config: prov.WebhookConfig) -> None:
        limit = config.view.tenant.rate_limit_per_minute or self._default_rate_limit
        decision = await self._limiter.acquire(str(tenant_id), limit)
        if not decision.allowed:
            retry = max(1, decision.retry_after_s)
            WEBHOOKS_REFUSED.add(1, {ATTR_STATUS: 429, ATTR_REASON: "rate_limited"})
            if self._rate_limited.hit(str(tenant_id)) == 1:
                # Once per tenant and window: a flood of 429s must not flood the logs too.
                log.warning(
                    "webhooks rate limited",
                    tenant_id=str(tenant_id),
                    limit_per_minute=limit,
                    retry_after_s=retry,
                    next_log_within_s=BURST_WINDOW_S,
                )
            raise _Stop(
                WebhookOutcome(
                    429,
                    {
                        "error": "rate_limited",
                        "detail": f"tenant {tenant_id} is over its limit of {limit} webhooks "
                        f"per minute; retry after {retry} s",
                    },
                    {"Retry-After": str(retry)},
                )
            )

    async def _interpret_and_store(
        self,
        adapter: GatewayAdapter,
        tenant_id: uuid.UUID,
        request: WebhookRequest,
        received_at: datetime,
    ) -> WebhookOutcome:
        def receipt(
            outcome: str,
            status: int,
            *,
            reason: str | None = None,
            order_id: str | None = None,
            body: Mapping[str, Any] | None = None,
        ) -> Receipt:
            return Receipt(
                received_at=received_at,
                gateway=adapter.name,
                outcome=outcome,
                http_status=status,
                body_sha256=sha256_hex(request.raw),
                body_redacted=redact_body(body) if body is not None else {},
                headers={k: v for k, v in request.headers.items() if k in _KEPT_HEADERS},
                content_type=request.headers.get("content-type"),
                reason=reason,
                order_id=order_id,
            )

        try:
            try:
                body = adapter.parse(request)
            except MalformedBody as exc:
                await self._store.record(tenant_id, receipt("invalid", 400, reason=str(exc)))
                return _error(400, "malformed_body", str(exc))
            try:
                result = adapter.interpret(body)
            except InvalidPayload as exc:
                await self._store.record(
                    tenant_id, receipt("invalid", 422, reason=str(exc), body=body)
                )
                return _error(422, "invalid_payload", str(exc), field=exc.field)
            if isinstance(result, Ignore):
                outcome = "test" if result.is_test else "ignored"
                await self._store.record(
                    tenant_id,
                    receipt(
                        outcome, 200, reason=result.reason, order_id=result.order_id, body=body
                    ),
                )
                return WebhookOutcome(200, {"status": "ignored", "reason": result.reason})
            return await self._accept(adapter, tenant_id, result, receipt(
                "accepted", 200, order_id=result.conversion.order_id, body=body
            ))  # fmt: skip
        except StorageUnavailable:
            log.exception(
                "webhook not stored: database unavailable",
                gateway=adapter.name,
                tenant_id=str(tenant_id),
            )
            return _retry_later("storage_unavailable", "the webhook could not be stored")

    async def _accept(
        self, adapter: GatewayAdapter, tenant_id: uuid.UUID, result: Accept, receipt: Receipt
    ) -> WebhookOutcome:
        if result.test_reason is not None:
            await self._store.record(
                tenant_id,
                replace(receipt, outcome="test", reason=result.test_reason),
            )
            return WebhookOutcome(200, {"status": "ignored", "reason": result.test_reason})
        accepted = await self._store.accept(tenant_id, result.conversion, receipt)
        log.info(
            "webhook accepted",
            tenant_id=str(tenant_id),
            gateway=adapter.name,
            conversion_id=str(accepted.conversion_id),
            status=result.conversion.status.value,
            duplicate=accepted.duplicate,
        )
        return WebhookOutcome(
            200,
            {
                "status": "accepted",
                "conversion_id": str(accepted.conversion_id),
                "duplicate": accepted.duplicate,
            },
        )


def _unknown_tenant(tenant_ref: str) -> WebhookOutcome:
    return _error(
        404,
        "unknown_tenant",
        f"no tenant {tenant_ref[:64]!r}; the webhook URL must carry the tenant id shown by "
        "`trackai tenant get <slug>`",
    )
