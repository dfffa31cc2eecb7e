"""The dispatcher's delivery metrics (OpenTelemetry instruments, shared by its use cases)."""

from __future__ import annotations

from trackai_kit.telemetry import get_meter

meter = get_meter("trackai.dispatcher")
# Labels come from bounded sets only (states, reasons, verdicts, ladder steps); tenant ids only
# where an alarm must name the tenant (token errors), bounded by the number of tenants.
EVENTS = meter.create_counter(
    "trackai.dispatcher.events",
    unit="{event}",
    description="Events by resulting state and reason (dead and expired ones included)",
)
REQUESTS = meter.create_counter(
    "trackai.dispatcher.meta.requests",
    unit="{request}",
    description="POSTs to Meta by verdict (Meta's error class)",
)
BATCH_SIZE = meter.create_histogram(
    "trackai.dispatcher.batch.size",
    unit="{event}",
    description="Events per POST",
    explicit_bucket_boundaries_advisory=[1, 10, 50, 100, 250, 500, 1000],
)
META_LATENCY = meter.create_histogram(
    "trackai.dispatcher.meta.duration",
    unit="s",
    description="Dispatch latency: one POST to Meta, sent to answer (or timeout)",
    explicit_bucket_boundaries_advisory=[0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5],
)
#: The seed's dispatch-latency objective: p95 under 0.5 s (the `dispatch-latency` alarm's
#: threshold; tests/contract/test_cloudwatch.py keeps them equal). CloudWatch cannot read a
#: histogram, so there the alarm reads the share of POSTs slower than this: p95 > T exactly when
#: more than 5 % of the POSTs take longer than T.
META_SLOW_S = 0.5
META_SLOW = meter.create_counter(
    "trackai.dispatcher.meta.slow_requests",
    unit="{request}",
    description=f"POSTs to Meta slower than {META_SLOW_S} s (the p95 alarm's CloudWatch source)",
)
BREAKER = meter.create_counter(
    "trackai.dispatcher.breaker.transitions",
    unit="{transition}",
    description="Destination breaker transitions (open, half-open, close)",
)
RETRIES = meter.create_counter(
    "trackai.dispatcher.retries",
    unit="{retry}",
    description="Retries scheduled, by step of the retry ladder (1 = first retry)",
)
EXPIRED = meter.create_counter(
    "trackai.dispatcher.expired",
    unit="{event}",
    description="Undelivered events expired by the sweep (past Meta's 7-day limit)",
)
TOKEN_ERRORS = meter.create_counter(
    "trackai.dispatcher.token_errors",
    unit="{error}",
    description="Meta token errors (190) by tenant: alert on any",
)
