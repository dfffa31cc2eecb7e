"""Servers under test as child processes: uvicorn apps (uvloop + httptools) or any command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from trackai_testing.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux ``/proc``)."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            # The command name (field 2) may contain spaces; count fields after its ')'.
            fields = stat.read().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def process_server(
    argv: Sequence[str],
    port: int,
    *,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 120.0,
    stdout: IO[bytes] | None = None,
) -> AsyncIterator[Server]:
    """Run ``argv`` (a server that will listen on ``port``); yield it once it accepts
    connections; terminate it (then kill after 10 s) on exit. ``startup_timeout`` is generous:
    on the shared two-core machine a service took over 60 s to listen at a load average of 17.

    Later suites start real services this way, e.g. ``python -m trackai_ingestion serve`` with
    ``INGESTION_HTTP_PORT`` and ``DATABASE_URL`` in ``extra_env``. ``stdout`` (a file) takes
    the server's log lines instead of this terminal.
    """
    # The child inherits this environment, plus what the benchmark sets for it.
    env = {**os.environ, **extra_env} if extra_env else None
    process = await asyncio.create_subprocess_exec(*argv, cwd=REPO_ROOT, env=env, stdout=stdout)
    try:
        await _wait_listening(port, process, startup_timeout)
        yield Server(port=port, pid=process.pid)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def uvicorn_server(
    app: str, *, factory: bool = False, extra_env: Mapping[str, str] | None = None
) -> contextlib.AbstractAsyncContextManager[Server]:
    """``uvicorn <app>`` (one worker, uvloop, httptools, no access log) on a free port;
    ``factory``: ``app`` names a function that builds the app (``--factory``)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        *(["--factory"] if factory else []),
        "--app-dir",
        str(REPO_ROOT),
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return process_server(argv, port, extra_env=extra_env)


async def _wait_listening(port: int, process: asyncio.subprocess.Process, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"uvicorn did not listen on {HOST}:{port} within {limit_s}s")
