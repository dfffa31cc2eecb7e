"""Local stack helper behind `make services`, `make migrate`, `make run` and `make test`.

Checks (and if needed starts) the local PostgreSQL and RabbitMQ, applies migrations, and runs every
service plus the sandbox fakes as child processes, printing where each listens. Ctrl-C stops all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from trackai_ingestion.settings import Settings as IngestionSettings
from trackai_kit.settings import GRPC_PORTS, HTTP_PORTS, ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SANDBOX_PORTS = {
    "meta": 8010,
    "cloudflare": 8011,
    "stape": 8012,
    "gtm": 8013,
    "llm": 8014,
    "sentry": 8015,
}
CHROMIUM = "/usr/bin/chromium"
#: Health ports of the second process of a service when it shares a machine with `serve`:
#: ingestion's outbox relay and the queue consumers (as the Helm chart deploys them).
WORKER_PROCESSES = {
    "ingestion": ("relay", 8101),
    "matcher": ("consume", 8102),
    "dispatcher": ("consume", 8103),
}


def _say(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def _reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_reachable(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _reachable(host, port):
            return True
        time.sleep(0.5)
    return False


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _start_postgres() -> bool:
    if not shutil.which("pg_ctlcluster"):
        return False
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").glob("*"))
        if Path("/etc/postgresql").exists()
        else []
    )
    for version in versions:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
        )
    return bool(versions)


def _start_rabbitmq() -> bool:
    if not shutil.which("rabbitmq-server"):
        return False
    subprocess.run(["rabbitmq-server", "-detached"], check=False, capture_output=True)
    return True


def _start_redis() -> bool:
    if not shutil.which("redis-server"):
        return False
    # Nothing to persist: the rate limiter's counters are short-lived by design.
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=False,
        capture_output=True,
    )
    return True


def ensure_services() -> None:
    settings = ServiceSettings()
    redis_url = IngestionSettings().redis_url
    checks = [
        (
            "PostgreSQL",
            settings.database_url,
            5432,
            _start_postgres,
            "install PostgreSQL 15+ (apt-get install postgresql) "
            "or set DATABASE_URL to a reachable server",
        ),
        (
            "RabbitMQ",
            settings.amqp_url,
            5672,
            _start_rabbitmq,
            "install RabbitMQ 3.13+ (apt-get install rabbitmq-server) "
            "or set AMQP_URL to a reachable broker",
        ),
        (
            "Redis",
            redis_url,
            6379,
            _start_redis,
            "install Redis 7 (apt-get install redis-server) or set REDIS_URL "
            "(ingestion's shared rate limiter)",
        ),
    ]
    for name, url, default_port, start, advice in checks:
        host, port = _host_port(url, default_port)
        if _reachable(host, port):
            _say(f"  {name:<10} reachable at {host}:{port}")
            continue
        local = host in ("127.0.0.1", "localhost", "::1")
        if local and start():
            _say(f"  {name:<10} was stopped; starting the local server ...")
            if _wait_reachable(host, port, 90):
                _say(f"  {name:<10} reachable at {host}:{port}")
                continue
        sys.exit(f"{name} is not reachable at {host}:{port}. To fix: {advice}.")


def ensure_browser() -> None:
    """Browser tests drive Debian's Chromium (Playwright cannot download its own here)."""
    if Path(CHROMIUM).exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(
            f"{CHROMIUM} is missing and this user cannot install it: run "
            "`sudo apt-get install chromium` (Debian's package), then `make test` again."
        )
    _say("  installing Debian's chromium for the browser tests (once) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


#: Debian packages whose tools the tests call (trackai_testing.require_tool).
MONITORING_TOOLS = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def ensure_tools() -> None:
    """The browser and the monitoring tools the test suite drives, from Debian's packages."""
    ensure_browser()
    missing = sorted({pkg for tool, pkg in MONITORING_TOOLS.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(
            f"{', '.join(missing)} missing and this user cannot install them: run "
            f"`sudo apt-get install --no-install-recommends {' '.join(missing)}`, then `make test`."
        )
    _say(f"  installing Debian's {', '.join(missing)} for the alarm tests (once) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    # Only the tools: the packages' services are not started (no init system runs them here).
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )


def _enable_rabbitmq_prometheus() -> None:
    """RabbitMQ's built-in Prometheus plugin (queue depths on :15692/metrics, docs/metrics.md)."""
    plugins = shutil.which("rabbitmq-plugins")
    if plugins is None:
        return
    done = subprocess.run(
        [plugins, "enable", "rabbitmq_prometheus"], check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        _say("  (could not enable rabbitmq_prometheus: queue metrics stay off on this broker)")


def service_role(svc: str) -> str:
    """The database role a service connects as: rights on its own schema only."""
    return f"trackai_{svc}"


def service_database_url(url: str, svc: str) -> str:
    """``url`` with the service's own role (local only: the password is the role's name)."""
    from sqlalchemy.engine import make_url

    role = service_role(svc)
    return make_url(url).set(username=role, password=role).render_as_string(hide_password=False)


def migrate() -> None:
    from trackai_kit.migrations import SERVICES, ensure_database, grant_service_role, upgrade_all

    url = ServiceSettings().database_url
    ensure_database(url)
    upgrade_all(url)
    for svc in SERVICES:
        grant_service_role(svc, url, service_role(svc), create_with_password=service_role(svc))
    _say(f"  migrations applied to {urlsplit(url).path.lstrip('/') or 'trackai'}")
    _say("  each service connects as trackai_<service>, with rights on its own schema only")
    asyncio.run(_reconcile_local_queues())


async def _reconcile_local_queues() -> None:
    """Recreate the local queues an older checkout declared with other arguments.

    RabbitMQ refuses to redeclare a queue with different arguments (a new ``x-delivery-limit``,
    say), and the services would then retry their declaration forever. On the local stack only,
    such a queue is deleted and declared again; its messages are dropped. A deployment migrates
    instead (docs/runbooks/dlq.md).
    """
    import aio_pika
    from aio_pika.exceptions import ChannelPreconditionFailed

    from trackai_kit import topology

    settings = ServiceSettings()
    wanted = (
        topology.ingestion_topology()
        .merge(topology.matcher_topology())
        .merge(topology.dispatcher_topology())
        .merge(topology.status_topology())
        .prefixed(settings.amqp_prefix)
    )
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        for spec in wanted.all_queues():
            channel = await connection.channel()
            try:
                await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments())
            except ChannelPreconditionFailed:
                channel = await connection.channel()
                await channel.queue_delete(spec.name)
                await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments())
                _say(f"  recreated local queue {spec.name} (declared by an older checkout)")
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    #: Every listener the process opens, as (label, base URL); each must answer 200 on
    #: ``ready_path`` before the process counts as ready.
    ready: list[tuple[str, str]] = field(default_factory=list)
    grpc: str = "-"
    ready_path: str = "/ready"
    popen: subprocess.Popen[bytes] | None = None


def _stack() -> list[Proc]:
    base_env: dict[str, str] = {}
    # Without real credentials, the services talk to the local fakes (the provisioner points
    # itself at the Cloudflare/Stape/GTM fakes when TRACKAI_ENV=local and none is configured).
    if not os.environ.get("META_GRAPH_URL"):
        base_env["META_GRAPH_URL"] = f"http://127.0.0.1:{SANDBOX_PORTS['meta']}"
    base_env.setdefault("PROVISIONING_POLL_INTERVAL_S", "2")
    # The agent talks to the LLM fake unless a real model is configured; local landing pages
    # may be probed on 127.0.0.1.
    if not os.environ.get("AGENT_LLM_API_KEY"):
        base_env["AGENT_LLM_BASE_URL"] = f"http://127.0.0.1:{SANDBOX_PORTS['llm']}/v1"
        base_env["AGENT_LLM_API_KEY"] = "sandbox-llm-key"
    base_env.setdefault("AGENT_FETCH_ALLOW_LOOPBACK", "true")
    database_url = ServiceSettings().database_url
    procs = [
        Proc(
            "sandbox",
            [PY, "-m", "trackai_sandbox", "serve"],
            dict(base_env),
            [(f"{fake} fake", f"http://127.0.0.1:{port}") for fake, port in SANDBOX_PORTS.items()],
            ready_path="/_sandbox/health",
        )
    ]
    # Ingestion publishes from its own relay process, so `serve` only answers webhooks.
    base_env["INGESTION_RELAY_IN_SERVE"] = "false"
    for svc in ("provisioner", "ingestion", "matcher", "dispatcher", "agent", "console"):
        procs.append(
            Proc(
                svc,
                [PY, "-m", f"trackai_{svc}", "serve"],
                {**base_env, "DATABASE_URL": service_database_url(database_url, svc)},
                [("http", f"http://127.0.0.1:{HTTP_PORTS[svc]}")],
                f"127.0.0.1:{GRPC_PORTS[svc]}" if svc in GRPC_PORTS else "-",
            )
        )
    for svc, (command, port) in WORKER_PROCESSES.items():
        env = {**base_env, "DATABASE_URL": service_database_url(database_url, svc)}
        env[f"{svc.upper()}_HTTP_PORT"] = str(port)
        procs.append(
            Proc(
                f"{svc}-{command}",
                [PY, "-m", f"trackai_{svc}", command],
                env,
                [("http", f"http://127.0.0.1:{port}")],
            )
        )
    return procs


def _stop(procs: list[Proc], grace: float = 20.0) -> None:
    for p in procs:
        if p.popen and p.popen.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        if p.popen is None:
            continue
        try:
            p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.popen.kill()


def _exited(procs: list[Proc]) -> Proc | None:
    return next((p for p in procs if p.popen is not None and p.popen.poll() is not None), None)


def _wait_ready(procs: list[Proc], stop: threading.Event) -> None:
    """Until every ready URL answers 200; exits the stack if a process dies or 90 s pass."""
    pending = [base + p.ready_path for p in procs for _, base in p.ready]
    deadline = time.monotonic() + 90
    with httpx.Client(timeout=2.0) as client:
        while pending and not stop.is_set() and time.monotonic() < deadline:
            dead = _exited(procs)
            if dead is not None:
                _stop(procs)
                sys.exit(f"!! {dead.name} exited before it was ready; see its log lines above")
            for url in list(pending):
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        pending.remove(url)
            time.sleep(0.3)
    if pending and not stop.is_set():
        _stop(procs)
        sys.exit("!! not ready after 90 s: " + ", ".join(pending))


def _print_table(procs: list[Proc]) -> None:
    _say("\nTrack AI is running (Ctrl-C stops everything):")
    _say(f"  {'process':<20} {'':<12} {'HTTP':<28} gRPC")
    for p in procs:
        for label, base in p.ready:
            _say(f"  {p.name:<20} {label:<12} {base:<28} {p.grpc}")
    _say("  webhooks:     http://127.0.0.1:8001/api/v1/webhooks/{gateway}/{tenant_id}")
    _say("  tracking:     http://127.0.0.1:8001/sdk/v1/track.js")


def _seed_demo() -> None:
    """A demo tenant, seller login and sample sales (TRACKAI_DEMO=false skips it)."""
    if os.environ.get("TRACKAI_DEMO", "true").lower() in ("0", "false", "no"):
        return
    sys.path.insert(0, str(ROOT / "scripts"))
    import demo_seed

    try:
        _say(demo_seed.seed())
    except (RuntimeError, httpx.HTTPError) as exc:
        _say(f"  demo:         not seeded ({exc}); the stack runs without it")


def run() -> None:
    _enable_rabbitmq_prometheus()
    procs = _stack()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for p in procs:
        # Own process group: the terminal's Ctrl-C reaches us, and we stop children in order.
        p.popen = subprocess.Popen(
            p.argv, cwd=ROOT, env={**os.environ, **p.env}, start_new_session=True
        )
    _say("Waiting for every process to be ready ...")
    _wait_ready(procs, stop)
    if not stop.is_set():
        _print_table(procs)
        _seed_demo()
    while not stop.is_set():
        dead = _exited(procs)
        if dead is not None:
            _say(f"!! {dead.name} exited; stopping the stack")
            break
        stop.wait(0.5)
    _say("Stopping ...")
    _stop(procs)
    _say("Stopped.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = {
        "ensure-services": ensure_services,
        "ensure-browser": ensure_browser,
        "ensure-tools": ensure_tools,
        "migrate": migrate,
        "run": run,
    }
    parser.add_argument("command", choices=list(commands))
    args = parser.parse_args()
    os.chdir(ROOT)
    # Services default to production; the local stack runs on the published development defaults
    # (token, key ring, sandbox fakes), which only TRACKAI_ENV=local|test accepts.
    os.environ.setdefault("TRACKAI_ENV", "local")
    commands[args.command]()


if __name__ == "__main__":
    main()
