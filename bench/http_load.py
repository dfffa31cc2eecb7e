"""HTTP/1.1 keep-alive load generator on raw asyncio protocols, closed loop or paced.

C connections each keep one request in flight until a deadline: closed loop (next request as soon
as the response is in: maximum throughput) or paced at a fixed total rate (latency at a given load,
e.g. half the maximum). Raw ``asyncio.Protocol`` rather than an HTTP client library, so the
generator spends as little of the shared CPU as possible and the figure reflects the server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from bench.stats import percentile

_HEADER_END = b"\r\n\r\n"
#: A request still unanswered this long after the load's end fails the run: a server that hangs
#: a request (seen once: ingestion's serve held a collect hit for 14 minutes, with its database,
#: Redis and broker connections idle) must not hang the whole benchmark run.
ANSWER_TIMEOUT_S = 60.0


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float] = field(repr=False)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def latency_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


def build_request(host: str, port: int, method: str, path: str, body: bytes) -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


def json_body(size: int = 1024) -> bytes:
    """A JSON object shaped like a checkout webhook, padded to ``size`` bytes."""
    payload = {
        "order_id": "bench-0000000001",
        "order_status": "paid",
        "payment_method": "credit_card",
        "Customer": {"email_hash": "0" * 64, "phone_hash": "1" * 64},
        "Commissions": {"charge_amount": "19700", "currency": "BRL"},
        "TrackingParameters": {"sck": "s" * 32, "utm_source": "facebook"},
        "padding": "",
    }
    base = len(json.dumps(payload, separators=(",", ":")).encode())
    payload["padding"] = "x" * max(0, size - base)
    return json.dumps(payload, separators=(",", ":")).encode()


class _Client(asyncio.Protocol):
    """One keep-alive connection with exactly one request in flight.

    Closed loop (``interval`` None): the next request leaves as soon as the response is in.
    Paced: request k is due at ``first + k * interval``; its latency counts from that due time, so
    a server that falls behind is charged for the queueing it causes (no coordinated omission).
    """

    def __init__(
        self,
        request: Callable[[], bytes],
        expected_status: int,
        latencies: list[float],
        interval: float | None,
    ) -> None:
        self._request = request
        self._expected = expected_status
        self._latencies = latencies
        self._interval = interval
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._sent_at = 0.0
        self._due = 0.0
        self._deadline = 0.0
        self._done = False
        self.errors = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self, deadline: float, first_due: float) -> None:
        self._deadline = deadline
        self._due = first_due
        self._next()

    def _next(self) -> None:
        if self._interval is None:
            self._send(time.perf_counter())
            return
        delay = self._due - time.perf_counter()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._send, self._due)
        else:
            self._send(self._due)

    def _send(self, counted_from: float) -> None:
        assert self._transport is not None
        if max(time.perf_counter(), counted_from) >= self._deadline:
            self._done = True
            self._transport.close()
            return
        self._sent_at = counted_from
        self._transport.write(self._request())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(_HEADER_END)
        if end < 0:
            return
        length = _content_length(bytes(self._buffer[:end]))
        if len(self._buffer) < end + len(_HEADER_END) + length:
            return
        self._latencies.append(time.perf_counter() - self._sent_at)
        if int(self._buffer[9:12]) != self._expected:
            self.errors += 1
        del self._buffer[:]
        if self._interval is not None:
            self._due += self._interval
        self._next()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            if self._done:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(exc or ConnectionError("server closed the connection"))


def _content_length(head: bytes) -> int:
    if head[9:12] in (b"204", b"304"):
        return 0  # never a body (RFC 9110 15.3.5, 15.4.5), whatever the headers say
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    # The baselines' servers always send a length; chunked bodies are out of scope here.
    raise ValueError(f"response without Content-Length: {head[:200]!r}")


async def run_load(
    host: str,
    port: int,
    *,
    request: bytes | Callable[[], bytes],
    connections: int,
    seconds: float,
    expected_status: int,
    rate: float | None = None,
) -> LoadResult:
    """Open ``connections`` sockets, then drive them for ``seconds``: closed loop, or paced at
    ``rate`` requests/s in total (connections staggered evenly over one interval).

    ``request`` is the raw HTTP request, or a function returning the next one (a benchmark whose
    every request must differ, e.g. a new order per webhook).
    """
    loop = asyncio.get_running_loop()
    interval = connections / rate if rate else None
    latencies: list[float] = []
    clients: list[_Client] = []
    next_request = request if callable(request) else (lambda: request)
    for _ in range(connections):
        _, client = await loop.create_connection(
            lambda: _Client(next_request, expected_status, latencies, interval), host, port
        )
        clients.append(client)
    started = time.perf_counter()
    for index, client in enumerate(clients):
        offset = index * interval / connections if interval else 0.0
        client.start(started + seconds, started + offset)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.finished for c in clients)), seconds + ANSWER_TIMEOUT_S
        )
    except TimeoutError:
        for client in clients:
            client.abort()
        raise RuntimeError(
            f"a request got no answer within {ANSWER_TIMEOUT_S:.0f} s of the load's end"
        ) from None
    elapsed = time.perf_counter() - started
    return LoadResult(
        requests=len(latencies),
        errors=sum(c.errors for c in clients),
        seconds=elapsed,
        latencies=latencies,
    )
