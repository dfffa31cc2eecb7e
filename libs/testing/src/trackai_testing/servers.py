"""Private RabbitMQ and PostgreSQL servers for tests that stop or restart them (issue 14).

The shared servers on 5672/5432 serve every other test (and other people's runs) at the same
time, so a scenario that stops or restarts its broker or database gets its own: a RabbitMQ node
(its own node name, ports and Mnesia directory; the machine's epmd and Erlang cookie) or a
PostgreSQL cluster (``initdb`` as the ``postgres`` user when run as root), in a temporary
directory, on free ports. A restart is a real one: the server process exits and a new one starts
on the same data, so clients see their connections closed and then refused while it starts.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from trackai_testing.ports import free_port

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
#: A broker or database starting on a loaded two-core machine (measured: RabbitMQ ~25 s).
START_S = 120.0


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def private_servers_available() -> str | None:
    """Why the private servers cannot run here, or None."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        return f"no RabbitMQ server in {RABBITMQ_BIN}"
    if not (POSTGRES_BIN / "initdb").exists():
        return f"no PostgreSQL server in {POSTGRES_BIN}"
    return None


@dataclass
class PrivateRabbit:
    """A single-node RabbitMQ of its own (same version as the shared one)."""

    base: Path
    port: int = 0
    dist_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.dist_port = self.dist_port or free_port()
        self.node = f"trackai-{self.port}@localhost"
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "none"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }

    def start(self) -> None:
        log = (self.base / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_S
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"private RabbitMQ did not start:\n{(self.base / 'server.log').read_text()}"
                )
            time.sleep(0.3)

    def stop(self) -> None:
        """A clean shutdown (what a rolling restart does); waits until the node has exited."""
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "shutdown"],
            env=self._env(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if self.process is not None:
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        if self.process is not None:
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of its own (``trust`` on 127.0.0.1, like the shared one)."""

    base: Path
    port: int = 0

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.data = self.base / "data"
        self.base.mkdir(parents=True, exist_ok=True)
        # PostgreSQL refuses to run as root: the cluster belongs to `postgres` then.
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self.base.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        command = [str(POSTGRES_BIN / tool), *args]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, f"{tool}: {done.stdout}\n{done.stderr}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"),
                  "-o", options, "-w", "-t", str(int(START_S)), "start")  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown: every session is terminated (clients see AdminShutdown)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(AssertionError):  # not running
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
