"""HTTP client of Meta's Conversions API ``/{pixel_id}/events`` edge, and the server event's JSON
form (Meta's field names, money as a JSON number)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from trackai.matcher.v1 import events_pb2
from trackai_dispatcher.domain.classification import MetaAnswer
from trackai_kit.telemetry import exported_span

tracer = trace.get_tracer(__name__)


def event_payload(event: events_pb2.ServerEvent) -> dict[str, Any]:
    """The event as stored in ``dispatches.payload``: Meta's field names, value still a string.

    ``event_time`` is turned back into a number: protobuf's JSON form writes int64 as a string,
    which Meta refuses.
    """
    payload = MessageToDict(event, preserving_proto_field_name=True)
    if "event_time" in payload:
        payload["event_time"] = int(payload["event_time"])
    return payload


def wire_event(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stored payload as Meta wants it: ``custom_data.value`` becomes a JSON number.

    ``float`` of a decimal string prints back as the same decimal (Python's shortest round-trip
    repr) for up to 15 significant digits, which covers any money amount.
    """
    custom = payload.get("custom_data")
    if not isinstance(custom, dict) or "value" not in custom:
        return payload
    return {**payload, "custom_data": {**custom, "value": float(Decimal(str(custom["value"])))}}


class MetaClient:
    """POSTs batches; never raises for Meta's answers or transport failures (see MetaAnswer)."""

    def __init__(
        self,
        graph_url: str,
        api_version: str,
        *,
        timeout_s: float,
        partner_agent: str,
        max_connections: int = 32,
    ) -> None:
        self._base = f"{graph_url.rstrip('/')}/{api_version}"
        self._partner_agent = partner_agent
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections),
            headers={"content-type": "application/json"},
        )

    async def post_events(
        self,
        pixel_id: str,
        access_token: str,
        events: list[Mapping[str, Any]],
        test_event_code: str | None,
    ) -> MetaAnswer:
        body: dict[str, Any] = {
            "data": [wire_event(e) for e in events],
            "partner_agent": self._partner_agent,
            # In the body, not the query string: URLs end up in proxies' and clients' logs.
            "access_token": access_token,
        }
        if test_event_code:
            body["test_event_code"] = test_event_code
        url = f"{self._base}/{pixel_id}/events"
        started = time.perf_counter()
        # The sale's trace ends with Meta's answer (HTTP semantic conventions; the token is in
        # the body, never in the URL).
        with exported_span(
            tracer,
            "POST",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": "POST", "url.full": url},
        ) as span:
            try:
                response = await self._http.post(url, content=json.dumps(body))
            except httpx.HTTPError as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                return MetaAnswer(
                    http_status=None,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    transport_error=f"{type(exc).__name__}: {exc}"[:500],
                )
            span.set_attribute("http.response.status_code", response.status_code)
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        return MetaAnswer(
            http_status=response.status_code,
            latency_ms=latency_ms,
            body=parsed if isinstance(parsed, dict) else None,
            trace_header=response.headers.get("x-fb-trace-id"),
        )

    async def close(self) -> None:
        await self._http.aclose()
