"""Serving ASGI apps with uvicorn: all fakes in one process, or one in a background thread.

:class:`BackgroundServer` binds an ephemeral port before starting, so tests (here and in other
packages) get a real HTTP server without races on the port number.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


class _QuietSignalsServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner (several share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True)
class Listener:
    name: str
    app: ASGIApp
    host: str
    port: int


async def serve_all(listeners: Sequence[Listener], log_level: str = "info") -> None:
    """Serve every listener until SIGINT/SIGTERM, then shut them all down."""
    servers = [
        _QuietSignalsServer(
            uvicorn.Config(
                listener.app,
                host=listener.host,
                port=listener.port,
                log_config=None,
                log_level=log_level.lower(),
                lifespan="off",
                timeout_graceful_shutdown=2,
                # One line per Graph call comes from the fake itself (with the fault, no token).
                access_log=False,
            )
        )
        for listener in listeners
    ]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await asyncio.gather(*(server.serve() for server in servers))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


class BackgroundServer:
    """Run one app on 127.0.0.1:<ephemeral> in a daemon thread; use as a context manager."""

    def __init__(self, app: ASGIApp, startup_timeout_s: float = 10.0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._server = _QuietSignalsServer(
            uvicorn.Config(
                app, log_config=None, lifespan="off", timeout_graceful_shutdown=1, access_log=False
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._startup_timeout_s = startup_timeout_s

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("sandbox server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
