"""The ASGI apps behind the HTTP baselines, served by uvicorn in a subprocess.

Both read the whole request body (a webhook receiver must, to verify its signature on the raw
bytes), so the FastAPI / bare ratio isolates the framework's own cost.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OK_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"2")]


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Raw ASGI callable: drain the body, answer ``200 ok``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
    await send({"type": "http.response.body", "body": b"ok"})


fastapi_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_app.post("/noop", status_code=202)
async def noop(request: Request) -> Response:
    """Accept a JSON body and do nothing with it: the floor of any FastAPI webhook route."""
    await request.body()
    return Response(status_code=202)


def observed_noop_app() -> FastAPI:
    """The no-op route on the kit's service app, with the kit's observability set up from the
    environment as a service process does it (``SENTRY_DSN``, ``METRICS_PROMETHEUS``): the floor
    of a service route, with and without production observability (``uvicorn --factory``)."""
    from trackai_kit.http import create_app
    from trackai_kit.sentry import configure_sentry
    from trackai_kit.settings import SentrySettings, TelemetrySettings
    from trackai_kit.telemetry import configure_telemetry

    prometheus = os.environ.get("METRICS_PROMETHEUS", "false") == "true"
    configure_telemetry("bench-noop", TelemetrySettings(prometheus=prometheus))
    configure_sentry(
        "bench-noop", SentrySettings(dsn=os.environ.get("SENTRY_DSN", "")), "production"
    )
    app = create_app("bench-noop")
    app.add_api_route("/noop", noop, methods=["POST"], status_code=202)
    return app
