"""What every QA checklist item uses: the outcome exceptions, the trail an item leaves for its
report, polling, the Kiwify sale it posts, and the landing page and browser the runner drives."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from threading import Thread
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp_pb

T = TypeVar("T")

GATEWAY = "kiwify"
FUNNEL = "qa"
CHECKOUT = "https://pay.kiwify.com.br/QaGate01"
#: Meta's click id format (fbq: ``fb.<subdomain index>.<ms>.<fbclid>``).
FBC_RE = r"^fb\.1\.\d{13}\.{fbclid}$"
DEAD_SALES = 6  # one more than the DLQ alarm's threshold (TrackaiDlqDepth: > 5)
DEAD_GAUGE = "trackai_dispatcher_dead_events"
#: What a Meta 5xx may leave on the ladder: retried, or parked while the breaker is open.
LADDER_OUTCOMES = frozenset(
    {
        disp_pb.ATTEMPT_OUTCOME_RETRYABLE,
        disp_pb.ATTEMPT_OUTCOME_TIMEOUT,
        disp_pb.ATTEMPT_OUTCOME_BREAKER_OPEN,
    }
)


class Failed(Exception):
    """The item's expectation was not met."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(actual)
        self.expected = expected
        self.actual = actual


class Skip(Exception):
    """The item cannot be checked on this target (said why)."""


@dataclass
class Trail:
    """What one item did, for its report: the path used and the steps to reproduce."""

    path: str = "API/CLI"
    steps: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    trace_id: str = ""

    def step(self, text: str) -> None:
        self.steps.append(text)

    def saw(self, text: str) -> None:
        self.evidence.append(text)


def expect(ok: object, expected: str, actual: str) -> None:
    if not ok:
        raise Failed(expected, actual)


async def until(
    probe: Callable[[], Awaitable[T | None]], seconds: float, expected: str, what: str
) -> T:
    """Poll ``probe`` until it returns a truthy value; Failed with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise Failed(expected, f"after {seconds:.0f} s: {what} (last seen: {last!r})")


def kiwify_sale(order_id: str, session_id: str | None, *, panel_test: bool = False) -> bytes:
    """Kiwify's approved-sale payload as of now (carrying ``session_id`` in ``sck``), or the
    panel's test payload (its sample buyer, no tracking parameters)."""
    payload = json.loads(resources.files(__package__).joinpath("kiwify_sale.json").read_text())
    brasilia_now = datetime.now(ZoneInfo("America/Sao_Paulo")).strftime("%Y-%m-%d %H:%M")
    payload.update(
        order_id=order_id, created_at=brasilia_now, updated_at=brasilia_now,
        approved_date=brasilia_now,
    )  # fmt: skip
    tracking = payload["TrackingParameters"]
    if panel_test:
        payload["Customer"].update(email="johndoe@example.com", full_name="John Doe")
        payload["TrackingParameters"] = dict.fromkeys(tracking)
    else:
        tracking["sck"] = session_id
    return json.dumps(payload).encode()


class Landing:
    """The seller's landing page, served by the runner: the snippet the provisioner generated
    (set once it exists) and a checkout link. Bound on the loopback; the agent reaches it only
    on a local stack (QA_LANDING_URL gives one reachable from a deployment)."""

    def __init__(self, host: str) -> None:
        self.html = "<!doctype html><html><head><title>Curso</title></head><body></body></html>"
        landing = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = landing.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Quiet: the runner's output is the report."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/"
        self.browser_url = f"http://{host}:{port}/"
        Thread(target=self._server.serve_forever, daemon=True).start()

    def page(self, snippet: str) -> None:
        self.html = (
            f'<!doctype html><html><head><meta charset="utf-8">{snippet}</head><body>'
            f'<a id="buy" href="{CHECKOUT}">Comprar</a></body></html>'
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Browser:
    """Chromium through Playwright, when this runner has both (the local stack, CI); None
    otherwise, and the items say they took the API path."""

    def __init__(self, playwright: Any, browser: Any) -> None:
        self._playwright = playwright
        self.browser = browser

    @classmethod
    async def open(cls) -> Browser | None:
        chromium = shutil.which("chromium")
        if chromium is None:
            return None
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            return None
        playwright = await async_playwright().start()
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        return cls(playwright, browser)

    async def close(self) -> None:
        await self.browser.close()
        await self._playwright.stop()
