"""Real service processes on free ports against a migrated test database and a private AMQP prefix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from trackai_kit.grpc import local_dev_token
from trackai_sandbox.meta import build_app
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.testing import MetaSandboxClient
from trackai_testing.ports import free_port

ROOT = Path(__file__).resolve().parents[2]

#: The tests call the services as the operator; each service uses its own development token.
TOKEN = local_dev_token("operator")


@dataclass
class ServiceProcess:
    name: str
    http_port: int
    grpc_port: int | None
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Stack:
    env: dict[str, str]
    tmp: Path
    procs: dict[str, ServiceProcess] = field(default_factory=dict)
    #: gRPC ports chosen before their server starts, so that a service started earlier can be
    #: told where a later one will answer (the provisioner asks ingestion about webhooks).
    grpc_ports: dict[str, int] = field(default_factory=dict)

    def grpc_target(self, service: str) -> str:
        if service not in self.grpc_ports:
            self.grpc_ports[service] = free_port()
        return f"127.0.0.1:{self.grpc_ports[service]}"

    def start(
        self, service: str, command: str = "serve", *, grpc: bool = True, **extra: str
    ) -> ServiceProcess:
        # free_port never hands a port out twice in a process: a port handed out is not bound
        # until its process starts, and gRPC servers bind with SO_REUSEPORT, so two would share
        # it silently (seen in CI: the matcher's and the dispatcher's gRPC servers on one port).
        http_port = free_port()
        reserved = self.grpc_ports.pop(service, None)
        grpc_port = (reserved or free_port()) if grpc else None
        env = {**self.env, f"{service.upper()}_HTTP_PORT": str(http_port), **extra}
        if grpc_port:
            env[f"{service.upper()}_GRPC_PORT"] = str(grpc_port)
        log = self.tmp / f"{service}-{command}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", f"trackai_{service}", command],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        proc = ServiceProcess(f"{service}-{command}", http_port, grpc_port, popen, log)
        self.procs[proc.name] = proc
        return proc

    def wait_ready(self, proc: ServiceProcess, timeout: float = 45.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise AssertionError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.logs()}")
            try:
                if httpx.get(proc.http + "/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{proc.name} not ready after {timeout}s:\n{proc.logs()}")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in self.procs.values():
            try:
                proc.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.popen.kill()


@pytest.fixture
def stack(database_url: str, amqp_url: str, amqp_prefix: str, tmp_path: Path) -> Iterator[Stack]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": amqp_prefix,
        "TRACKAI_ENV": "test",
        "LOG_JSON": "true",
    }
    s = Stack(env, tmp_path)
    s.env["INGESTION_GRPC_TARGET"] = s.grpc_target("ingestion")
    try:
        yield s
    finally:
        s.stop_all()


@pytest.fixture
def meta() -> Iterator[tuple[str, MetaSandboxClient]]:
    """The Meta fake on a free port: its base URL and a client of its inspection API."""
    server = BackgroundServer(build_app(SandboxSettings())).start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=5) as http:
            yield server.base_url, MetaSandboxClient(http)
    finally:
        server.stop()
