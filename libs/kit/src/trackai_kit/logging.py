"""Structured JSON logs on stdout: one pipeline for structlog and stdlib loggers.

Every line carries ``service``, ``level``, ``timestamp`` and, inside a span, ``trace_id`` and
``span_id``; every event dict goes through :func:`redact` before it is rendered.

Tracebacks never show frame locals (a decrypted token, a buyer's e-mail in a local variable):
exceptions are rendered to plain text by ``format_exc_info`` (the stdlib's traceback format, which
has no locals) before redaction, and the console renderer is given the plain formatter too, since
its default (rich's, whenever ``rich`` is installed, as in development) prints every frame's locals.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, cast

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from trackai_kit.redaction import redact
from trackai_kit.settings import LogSettings

__all__ = ["configure_logging", "get_logger", "redact"]

# Libraries whose INFO chatter (per request, per frame) drowns the service's own lines.
# httpx logs every request URL at INFO, and some provider APIs (Meta's debug_token) carry a
# token in the query string: keep it at WARNING.
_NOISY_LOGGERS = ("aiormq", "aio_pika", "uvicorn.access", "asyncio", "grpc", "httpx", "httpcore")


def _add_service(service: str) -> Processor:
    def processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def _add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict["trace_id"] = format(span_context.trace_id, "032x")
        event_dict["span_id"] = format(span_context.span_id, "016x")
    return event_dict


def _redact_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return cast(EventDict, redact(event_dict))


def _drop_stdlib_extras(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    return event_dict


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a record is emitted (test capture replaces it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        """The stream is always the current ``sys.stdout``; assignments are ignored."""


def configure_logging(settings: LogSettings, service: str) -> None:
    """Route structlog and stdlib ``logging`` to one JSON (or console) renderer on stdout."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_service(service),
        structlog.processors.StackInfoRenderer(),
        # Plain text, without locals, whichever renderer follows (see the module docstring).
        structlog.processors.format_exc_info,
        # Redaction runs after the exception is rendered to text (tracebacks may quote values) and
        # before the trace ids are added (hex ids must not be mistaken for phone numbers).
        _redact_event,
        _add_trace_ids,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if settings.json_output
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_stdlib_extras,
            renderer,
        ],
    )
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to the stdlib logger ``name``."""
    return structlog.stdlib.get_logger(name)


def bind_context(**values: Any) -> None:
    """Bind values (tenant id, event id...) to every log line of the current task; ``tenant_id``
    and ``event_id`` also become Sentry tags (trackai_kit.sentry)."""
    structlog.contextvars.bind_contextvars(**values)


def clear_context() -> None:
    """Forget what :func:`bind_context` bound in the current task (each consumed message starts
    clean)."""
    structlog.contextvars.clear_contextvars()
