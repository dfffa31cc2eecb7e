"""Sentry initialisation: error events only, cheap on hot paths, and scrubbed before they leave.

Nothing is sent without ``SENTRY_DSN``. What an event may hold is decided here, once:

- no frame local variables (they hold decrypted tenant secrets and parsed buyer data), no
  request bodies, no user identity; the SDK's own denylist scrubber stays on;
- every string of an event or breadcrumb (messages, exception values, frame context lines)
  passes through :func:`trackai_kit.redaction.redact` in ``before_send``/``before_breadcrumb``.

And what it costs: the SDK's auto-enabling integrations (Starlette/FastAPI, asyncpg, httpx...)
are off, so requests and queries create no spans and no breadcrumbs. Errors reach Sentry through
the logging integration (every ``ERROR`` line with its exception: the services log every
unhandled error), which records no breadcrumb per log line. Performance instrumentation of
requests and queries exists only when ``SENTRY_TRACES_SAMPLE_RATE`` is above zero.
"""

from __future__ import annotations

import logging
import uuid
from importlib.metadata import version
from typing import Any, cast

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.asyncpg import AsyncPGIntegration
from sentry_sdk.integrations.atexit import AtexitIntegration
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.integrations.excepthook import ExcepthookIntegration
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.integrations.threading import ThreadingIntegration
from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST, EventScrubber
from sentry_sdk.transport import Transport

from trackai_kit.redaction import REDACTED, redact
from trackai_kit.settings import SentrySettings

# Request parts that are never useful enough to justify the risk of shipping them.
_DROPPED_REQUEST_KEYS = ("cookies", "data", "env")
#: Added to the SDK's denylists (keys whose values its scrubber replaces, at any depth).
_EXTRA_DENYLIST = ["hottok", "access_token", "signing_secret", "secret", "token", "dsn"]


#: structlog's own keys, not fields of the line.
_STRUCTLOG_META = frozenset({"event", "timestamp", "level", "logger", "service"})
#: Fields of a log line (its own, or bound with ``bind_context``) that become the event's tags:
#: what an operator filters Sentry by. Both are opaque ids (a UUID, a SHA-256), never personal.
TAGGED_FIELDS = ("tenant_id", "event_id")


def _structured_log_entry(event: dict[str, Any], hint: dict[str, Any]) -> None:
    """A structlog line reaches the logging integration as its whole event dict, which Sentry
    would print as the message (timestamp included, so every occurrence a new issue): the message
    becomes the line's event name, the other fields go to ``extra``, and the tenant and event ids
    among them (the line's own or the task's bound context) become tags too."""
    fields = getattr(hint.get("log_record"), "msg", None)
    if not isinstance(fields, dict) or not isinstance(fields.get("event"), str):
        return
    event["logentry"] = {"message": fields["event"], "params": []}
    extra = event.setdefault("extra", {})
    for key, value in fields.items():
        if isinstance(key, str) and key not in _STRUCTLOG_META and not key.startswith("_"):
            extra[key] = value
    tags = event.setdefault("tags", {})
    for key in TAGGED_FIELDS:
        value = fields.get(key)
        if isinstance(value, str | uuid.UUID) and str(value):
            tags[key] = str(value)


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """``before_send`` hook: a redacted copy of the event (request bodies and cookies removed)."""
    _structured_log_entry(event, hint)
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


def integrations(traces_sample_rate: float) -> list[Integration]:
    """The SDK integrations a service runs with (the SDK's defaults are all turned off)."""
    chosen: list[Integration] = [
        # An event per ERROR line (with its exception); no breadcrumb per log line and no
        # Sentry Logs: the JSON logs on stdout are the log store.
        LoggingIntegration(level=None, event_level=logging.ERROR, sentry_logs_level=None),
        ExcepthookIntegration(),
        ThreadingIntegration(propagate_scope=False),
        AtexitIntegration(),
        DedupeIntegration(),
    ]
    if traces_sample_rate > 0:
        # Performance monitoring was asked for: request transactions and query spans. Their
        # per-request cost is paid only then.
        chosen += [StarletteIntegration(), FastApiIntegration(), AsyncPGIntegration()]
    return chosen


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
    rate = settings.traces_sample_rate
    options: dict[str, Any] = {
        "dsn": dsn,
        "environment": environment,
        # Explicit: the SDK would otherwise guess from git, absent in an image.
        "release": settings.release or f"trackai@{version('trackai-kit')}",
        "server_name": service,
        "default_integrations": False,
        "auto_enabling_integrations": False,
        "integrations": integrations(rate),
        # Frames' variables hold decrypted secrets and parsed payloads: never shipped.
        "include_local_variables": False,
        "max_request_body_size": "never",
        # Neither data_collection nor send_default_pii is set: the SDK then collects no user
        # identity, cookies or bodies, and keeps its own scrubber (which a data_collection
        # setting would disable), here recursive and with our credential words added.
        "event_scrubber": EventScrubber(
            denylist=DEFAULT_DENYLIST + _EXTRA_DENYLIST,
            pii_denylist=DEFAULT_PII_DENYLIST,
            recursive=True,
        ),
        # None (not 0.0): with a rate of zero the SDK would still build unsampled transactions.
        "traces_sample_rate": rate if rate > 0 else None,
        "before_send": scrub_event,
        "before_send_transaction": scrub_event,
        "before_breadcrumb": scrub_breadcrumb,
    }
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    sentry_sdk.set_tag("service", service)
