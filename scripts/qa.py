"""`make qa`: the release gate's checklist (docs/qa-checklist.md) against the local stack, or
against a deployment.

With ``QA_BASE_URL`` set, the checklist runs against that deployment (staging): ``trackai qa``
with the environment as given (``QA_TOKEN``, ``<SVC>_GRPC_TARGET``, the ``QA_*_SANDBOX_URL``s
where it runs on the fakes). Without it, this script brings up the stack itself, as `make run`
does but on free ports, a private database and a private AMQP prefix: the sandbox fakes and every
service process; runs the checklist against it by URL (the same code path as a deployment) and
stops everything. The report's paths are printed; the exit code is the gate's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg
import httpx

from trackai_dispatcher.settings import Settings as DispatcherSettings
from trackai_kit.migrations import ensure_database, upgrade_all
from trackai_kit.postgres import asyncpg_dsn
from trackai_kit.settings import ServiceSettings
from trackai_kit.topology import (
    CAPI_DISPATCH,
    delay_queues,
    dispatcher_topology,
    ingestion_topology,
    matcher_topology,
    status_topology,
)
from trackai_sandbox import cloudflare, gtm, stape
from trackai_sandbox.sentry import dsn as sentry_dsn
from trackai_testing.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
FAKES = ("meta", "cloudflare", "stape", "gtm", "llm", "sentry")
#: The retry ladder for the run: item 14 climbs it to the DLQ in seconds, not the production
#: 1-2-4-8-16 s (the ladder's length and delays are tested in the dispatcher's own suite).
LADDER_MS = "200,400"
READY_S = 180.0
#: The processes the checklist talks to (the console is not needed: every item has an API path).
SERVICES = ("provisioner", "ingestion", "matcher", "dispatcher", "agent")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    ready_url: str


@dataclass
class LocalStack:
    """Every process of the local stack on free ports; ``env`` is what `trackai qa` needs."""

    logs: Path
    faults: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    prefix: str = ""

    def _start(self, name: str, argv: list[str], env: dict[str, str], ready_url: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(Proc(name, popen, ready_url))

    def up(self) -> None:
        base = ServiceSettings().database_url
        tag = uuid.uuid4().hex[:10]
        self.database_url = asyncpg_dsn(base).rsplit("/", 1)[0] + f"/trackai_qa_{tag}"
        self.prefix = f"qa{tag}."
        ensure_database(self.database_url)
        upgrade_all(self.database_url)
        ports = {fake: free_port() for fake in FAKES}
        common = {
            **os.environ,
            "TRACKAI_ENV": "local",
            "LOG_JSON": "true",
            "DATABASE_URL": self.database_url,
            "AMQP_PREFIX": self.prefix,
            "SENTRY_DSN": sentry_dsn(f"http://127.0.0.1:{ports['sentry']}"),
        }
        sandbox_env = {**common, **{f"SANDBOX_{k.upper()}_PORT": str(v) for k, v in ports.items()}}
        sandbox_env["SANDBOX_STAPE_READY_AFTER_S"] = "5"
        self._start(
            "sandbox",
            [PY, "-m", "trackai_sandbox", "serve"],
            sandbox_env,
            f"http://127.0.0.1:{ports['meta']}/_sandbox/health",
        )
        http = {svc: free_port() for svc in (*SERVICES, "matcher-consume", "dispatcher-consume")}
        grpc = {svc: free_port() for svc in SERVICES}
        ingestion_url = f"http://127.0.0.1:{http['ingestion']}"
        services = {
            **common,
            **{f"{svc.upper()}_GRPC_TARGET": f"127.0.0.1:{port}" for svc, port in grpc.items()},
            "META_GRAPH_URL": f"http://127.0.0.1:{ports['meta']}",
            "CF_BASE_DOMAIN": "trackai.test",
            "CLOUDFLARE_API_URL": f"http://127.0.0.1:{ports['cloudflare']}/client/v4",
            "CLOUDFLARE_API_TOKEN": cloudflare.DEMO_TOKEN,
            "CLOUDFLARE_ZONE_ID": cloudflare.DEMO_ZONE_ID,
            "STAPE_API_URL": f"http://127.0.0.1:{ports['stape']}",
            "STAPE_API_KEY": stape.DEMO_KEY,
            "GTM_API_URL": f"http://127.0.0.1:{ports['gtm']}",
            "GTM_ACCOUNT_ID": gtm.DEMO_ACCOUNT_ID,
            "GTM_CREDENTIALS_JSON": "sandbox-access-token",
            # Google's 0.25 requests/s would make the saga take minutes; the fake's quota is
            # raised to match (the pacing has its own tests).
            "GTM_REQUESTS_PER_SECOND": "1000",
            "PROVISIONING_POLL_INTERVAL_S": "0.5",
            "TRACKING_SCRIPT_URL": f"{ingestion_url}/sdk/v1/track.js",
            "AGENT_WEBHOOK_BASE_URL": ingestion_url,
            "AGENT_FETCH_ALLOW_LOOPBACK": "true",
            "DISPATCHER_RETRY_DELAYS_MS": LADDER_MS,
            "DISPATCHER_BATCH_DEADLINE_MS": "100",
            **self.faults,
        }
        for svc in SERVICES:
            env = {
                **services,
                f"{svc.upper()}_HTTP_PORT": str(http[svc]),
                f"{svc.upper()}_GRPC_PORT": str(grpc[svc]),
            }
            self._start(
                svc,
                [PY, "-m", f"trackai_{svc}", "serve"],
                env,
                f"http://127.0.0.1:{http[svc]}/ready",
            )
        for svc in ("matcher", "dispatcher"):
            env = {**services, f"{svc.upper()}_HTTP_PORT": str(http[f"{svc}-consume"])}
            self._start(
                f"{svc}-consume",
                [PY, "-m", f"trackai_{svc}", "consume"],
                env,
                f"http://127.0.0.1:{http[f'{svc}-consume']}/ready",
            )
        self._wait_ready()
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['gtm']}") as client:
            client.post("/_sandbox/quota", json={"qps": 1000}).raise_for_status()
        self.env = {
            **os.environ,
            "TRACKAI_ENV": "local",
            "QA_BASE_URL": ingestion_url,
            **{f"{svc.upper()}_GRPC_TARGET": f"127.0.0.1:{port}" for svc, port in grpc.items()},
            **{
                f"QA_{fake.upper()}_SANDBOX_URL": f"http://127.0.0.1:{ports[fake]}"
                for fake in ("meta", "cloudflare", "stape", "gtm", "sentry")
            },
            "QA_DISPATCHER_METRICS_URL": f"http://127.0.0.1:{http['dispatcher-consume']}/metrics",
            "QA_ALARMS_FILE": str(ROOT / "charts/trackai/monitoring/alarms.yaml"),
            "QA_LOG_DIR": str(self.logs),
            "AMQP_PREFIX": self.prefix,
        }

    def _wait_ready(self) -> None:
        pending = {p.name: p for p in self.procs}
        deadline = time.monotonic() + READY_S
        with httpx.Client(timeout=2.0) as client:
            while pending and time.monotonic() < deadline:
                for name, proc in list(pending.items()):
                    if proc.popen.poll() is not None:
                        log = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                        raise RuntimeError(f"{name} exited before it was ready:\n{log}")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(proc.ready_url).status_code == 200:
                            del pending[name]
                time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not ready after {READY_S:.0f} s: {', '.join(pending)}")

    def down(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
        if self.database_url:
            asyncio.run(_drop(self.database_url, self.prefix))


async def _drop(database_url: str, prefix: str) -> None:
    """Remove what this run created: its database and its prefixed queues and exchanges."""
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    # The dispatcher declares a delay queue per step of the run's ladder and one for parking.
    ladder = tuple(int(ms) for ms in LADDER_MS.split(","))
    park_ms = DispatcherSettings().park_delay_ms
    known = (
        ingestion_topology()
        .merge(matcher_topology())
        .merge(dispatcher_topology())
        .merge(delay_queues(CAPI_DISPATCH, (*ladder, park_ms)))
        .merge(status_topology())
        .prefixed(prefix)
    )
    connection = await aio_pika.connect(ServiceSettings().amqp_url)
    try:
        channel = await connection.channel()
        for queue in sorted(q.name for q in known.all_queues()):
            with contextlib.suppress(Exception):
                if channel.is_closed:
                    channel = await connection.channel()
                await channel.queue_delete(queue)
        for exchange in sorted(e.name for e in known.exchanges):
            with contextlib.suppress(Exception):
                if channel.is_closed:
                    channel = await connection.channel()
                await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@contextlib.contextmanager
def local_stack(logs: Path, faults: dict[str, str] | None = None) -> Iterator[LocalStack]:
    stack = LocalStack(logs, dict(faults or {}))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def run_gate(env: dict[str, str], args: list[str]) -> int:
    trackai = Path(PY).parent / "trackai"
    return subprocess.run([str(trackai), "qa", *args], env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", help="only these item numbers, e.g. 1,7,8")
    parser.add_argument("--non-destructive", action="store_true")
    parser.add_argument("--report-dir", default=str(ROOT / "qa-report"))
    args = parser.parse_args()
    gate_args = ["--report-dir", args.report_dir]
    if args.items:
        gate_args += ["--items", args.items]
    if args.non_destructive:
        gate_args.append("--non-destructive")
    if os.environ.get("QA_BASE_URL"):
        sys.stdout.write(f"QA gate against {os.environ['QA_BASE_URL']}\n")
        return run_gate(dict(os.environ), gate_args)
    # The local stack needs what `make test` needs: PostgreSQL, RabbitMQ, Redis, Chromium and
    # promtool (started or installed by devstack when missing); a deployment needs none of it.
    for need in ("ensure-services", "ensure-tools"):
        subprocess.run([PY, str(ROOT / "scripts/devstack.py"), need], check=True)
    logs = Path(tempfile.mkdtemp(prefix="trackai-qa-"))
    sys.stdout.write(f"QA gate against a local stack (process logs in {logs}) ...\n")
    sys.stdout.flush()
    with local_stack(logs) as stack:
        return run_gate(stack.env, gate_args)


if __name__ == "__main__":
    sys.exit(main())
