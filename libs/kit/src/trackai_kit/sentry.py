"""Sentry initialisation with a scrubber that strips personal data and secrets from every event.

Nothing is sent without ``SENTRY_DSN``; events and breadcrumbs pass through :func:`redact` first.
"""

from __future__ import annotations

from typing import Any, cast

import sentry_sdk
from sentry_sdk.transport import Transport

from trackai_kit.redaction import REDACTED, redact
from trackai_kit.settings import SentrySettings

# Request parts that are never useful enough to justify the risk of shipping them.
_DROPPED_REQUEST_KEYS = ("cookies", "data", "env")


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """``before_send`` hook: a redacted copy of the event (request bodies and cookies removed)."""
    del hint  # part of Sentry's hook signature; the event itself holds everything we scrub
    cleaned = cast(dict[str, Any], redact(event))
    request = cleaned.get("request")
    if isinstance(request, dict):
        for key in _DROPPED_REQUEST_KEYS:
            if key in request:
                request[key] = REDACTED
    user = cleaned.get("user")
    if isinstance(user, dict):
        # Keep only an opaque id; IP, e-mail and username identify a person.
        cleaned["user"] = {"id": user["id"]} if "id" in user else {}
    return cleaned


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """``before_breadcrumb`` hook: a redacted copy of the breadcrumb."""
    del hint
    return cast(dict[str, Any], redact(crumb))


def configure_sentry(
    service: str,
    settings: SentrySettings,
    environment: str,
    *,
    transport: type[Transport] | Transport | None = None,
) -> None:
    """Initialise the Sentry SDK; a no-op when no DSN is configured.

    ``transport`` exists for tests, which capture events in memory instead of sending them.
    """
    dsn = settings.dsn.get_secret_value()
    if not dsn:
        return
    options: dict[str, Any] = {
        "dsn": dsn,
        "environment": environment,
        "server_name": service,
        # The SDK's replacement for send_default_pii=False: no user identity, bodies or SQL values
        # collected by integrations (scrub_event still runs on whatever is collected).
        "data_collection": {"user_info": False, "http_bodies": [], "database_query_data": False},
        "include_local_variables": True,
        "traces_sample_rate": settings.traces_sample_rate,
        "before_send": scrub_event,
        "before_breadcrumb": scrub_breadcrumb,
        "max_request_body_size": "never",
    }
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    sentry_sdk.set_tag("service", service)
