"""The demo tenant `make run` seeds, so a newcomer sees a populated console at once: a tenant with
Kiwify and the Meta fake configured, a seller login, and sample traffic (page views with an ad
click, then signed sales: most matched to their click, some not, one sent twice).

Local only: the login and the secrets are published development values, which the services accept
only with TRACKAI_ENV=local|test. Run again, it reuses what exists and adds a little traffic.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
TRACKAI = str(Path(sys.executable).parent / "trackai")
INGESTION = "http://127.0.0.1:8001"
SLUG = "loja-demo"
DOMAIN = "loja-demo.localhost"
KIWIFY_TOKEN = "demo-kiwify-token"  # noqa: S105 - a published local-only value
PIXEL_ID = "1234567890"
META_TOKEN = "sandbox-token"  # noqa: S105 - the Meta fake's demo token
EMAIL = "demo@trackai.local"
PASSWORD = "demo-trackai-local"  # noqa: S105 - printed by `make run`, local only
FIXTURE = ROOT / "services/ingestion/tests/fixtures/gateways/kiwify-3.json"


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRACKAI, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def _tenant_id() -> str:
    found = _cli("tenant", "get", SLUG, "--json")
    if found.returncode == 0:
        return str(json.loads(found.stdout)["id"])
    created = _cli("tenant", "create", "--name", "Loja Demo", "--slug", SLUG,
                   "--domain", DOMAIN, "--json")  # fmt: skip
    if created.returncode != 0:
        raise RuntimeError(f"tenant create: {created.stderr.strip()}")
    tenant_id = str(json.loads(created.stdout)["id"])
    for args, secret in (
        (("tenant", "set-gateway", tenant_id, "--gateway", "kiwify", "--secret-file", "-"),
         KIWIFY_TOKEN),
        (("tenant", "set-meta", tenant_id, "--pixel-id", PIXEL_ID, "--access-token-file", "-"),
         META_TOKEN),
    ):  # fmt: skip
        done = _cli(*args, stdin=secret)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])}: {done.stderr.strip()}")
    return tenant_id


def _seller(tenant_id: str) -> None:
    done = _cli("user", "create", "--email", EMAIL, "--role", "seller", "--tenant", tenant_id,
                "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    if done.returncode != 0 and "exist" not in done.stderr.lower():
        raise RuntimeError(f"user create: {done.stderr.strip()}")


def _sale(order_id: str, session_id: str) -> bytes:
    payload = json.loads(FIXTURE.read_text())
    now = datetime.now(ZoneInfo("America/Sao_Paulo")).strftime("%Y-%m-%d %H:%M")
    payload.update(order_id=order_id, created_at=now, updated_at=now, approved_date=now)
    payload["TrackingParameters"]["sck"] = session_id
    return json.dumps(payload).encode()


def _traffic(tenant_id: str, http: httpx.Client) -> int:
    """Page views with an ad click and their sales: 6 matched, 2 without a click, 1 repeated."""
    run = uuid.uuid4().hex[:8]
    sales = 0
    for n in range(8):
        session = f"ta{run}demo{n:010d}"
        if n < 6:
            hit = http.post(
                f"{INGESTION}/api/v1/collect/{tenant_id}",
                headers={"Origin": f"http://{DOMAIN}", "Content-Type": "text/plain",
                         "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile"},
                content=json.dumps({
                    "type": "page_view", "session_id": session,
                    "event_id": f"pv{run}{n:012d}",
                    "page_url": f"http://{DOMAIN}/curso?utm_source=facebook&fbclid=IwAR{run}{n}",
                    "fbclid": f"IwAR{run}{n}",
                }),
            )  # fmt: skip
            hit.raise_for_status()
        body = _sale(f"demo-{run}-{n}", session)
        signature = hmac.new(KIWIFY_TOKEN.encode(), body, hashlib.sha1).hexdigest()
        for _ in range(2 if n == 0 else 1):  # the first sale is posted twice, as gateways do
            answer = http.post(
                f"{INGESTION}/api/v1/webhooks/kiwify/{tenant_id}?signature={signature}",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            answer.raise_for_status()
        sales += 1
    return sales


def seed() -> str:
    """Seed the demo; the lines `make run` prints about it."""
    tenant_id = _tenant_id()
    _seller(tenant_id)
    with httpx.Client(timeout=10) as http:
        sales = _traffic(tenant_id, http)
    return (
        f"  demo:         {sales} sample sales for tenant {SLUG} ({tenant_id}), at "
        f"{datetime.now(UTC):%H:%M} UTC\n"
        f"  console:      http://127.0.0.1:8000  login {EMAIL} / {PASSWORD}"
    )
