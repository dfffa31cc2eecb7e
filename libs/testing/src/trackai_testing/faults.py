"""Network faults without touching the shared servers: a TCP proxy whose connections can be cut."""

from __future__ import annotations

import asyncio
import contextlib

from trackai_testing.ports import free_port


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:port``; :meth:`cut` resets every open connection
    (both sides) while new ones are still accepted, as a network blip or a failover does;
    :meth:`down` also stops listening (an outage) until :meth:`up` listens again on the same
    port."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        """Listen on a free port and return it.

        The port comes from :func:`~trackai_testing.ports.free_port`, not from a bind to port 0:
        :meth:`down` releases it and :meth:`up` binds it again, and a port of the kernel's
        ephemeral range could meanwhile become the local end of any outgoing connection (or
        another xdist worker's listener), so that :meth:`up` would fail.
        """
        self.port = self.port or free_port()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.cut()

    async def up(self) -> None:
        """Listen again, on the same port."""
        await self.start()

    async def close(self) -> None:
        await self.down()
