"""The matcher's OpenTelemetry instruments (exported with the process's meter provider)."""

from __future__ import annotations

from opentelemetry.metrics import Meter

from trackai_kit.telemetry import get_meter


class MatcherMetrics:
    """Counters and the match-latency histogram; attributes carry ids and stages, never PII."""

    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or get_meter("trackai.matcher")
        self.emq_low = meter.create_counter(
            "trackai.matcher.emq_low",
            unit="{event}",
            description="Events whose Event Match Quality estimate is below the alert threshold",
        )
        self.emq = meter.create_histogram(
            "trackai.matcher.emq",
            unit="{score}",
            description="Event Match Quality estimate (0-10) of the events sent, by tenant",
            explicit_bucket_boundaries_advisory=[2, 4, 6, 8],
        )
        self.conversions = meter.create_counter(
            "trackai.matcher.conversions",
            unit="{event}",
            description="Conversion messages by disposition and match stage",
        )
        self.hits = meter.create_counter(
            "trackai.matcher.hits", unit="{hit}", description="Browser hits folded into sessions"
        )
        self.match_duration = meter.create_histogram(
            "trackai.matcher.match_duration",
            unit="ms",
            description="Time to decide one order's match (three stages)",
        )
