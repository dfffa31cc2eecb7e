"""Free TCP ports for processes a test (or a script) starts, safe in parallel pytest-xdist workers.

The usual trick, bind to port 0, read the number the kernel chose, close the socket and pass the
number to a child process, leaves a window between the close and the child's own bind. The number
came from the kernel's ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``), so in that
window the kernel may hand it to anyone else: another worker's bind to port 0, or any outgoing
connection's local port. With two xdist workers that window was hit in CI (a stack's reserved
port taken by the other worker's test before the stack's process bound it).

:func:`free_port` closes it by handing out ports the kernel never picks on its own:

* ports come from below the ephemeral range (20000 up to its start, 32767 here), which the kernel
  uses neither for a bind to port 0 nor for the local end of a connection;
* each xdist worker (``PYTEST_XDIST_WORKER``: ``gw0``, ``gw1``, ...; absent in a serial run or a
  script) gets its own disjoint block of that region, so two workers never hand out the same port;
* within its block a process starts at a random offset (so that independent runs on the same
  machine are unlikely to walk the same ports) and then goes sequentially, skipping any port that
  cannot be bound on 127.0.0.1 right now. The probe sets neither ``SO_REUSEADDR`` nor
  ``SO_REUSEPORT``, so a port anything listens on (127.0.0.1 or the wildcard address, whatever
  options the listener set) is skipped too;
* a process never hands out the same port twice: a port handed out is not bound until its process
  starts, and the probe alone would offer it again meanwhile (gRPC servers bind with
  ``SO_REUSEPORT``, so two of them would silently share it).

What it does not cover: two independent pytest runs on one machine use the same blocks (the random
start keeps them apart in practice, and the bind check catches any port already bound), and a
child process calling :func:`free_port` itself keeps its own "never twice" record. When the
ephemeral range leaves no room below or above it, ports come from the default region and only the
bind check protects them.
"""

from __future__ import annotations

import os
import random
import re
import socket
import threading
import zlib
from pathlib import Path

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Linux's default ephemeral range, assumed when the file above is absent or unreadable.
DEFAULT_EPHEMERAL = (32768, 60999)
#: The lowest port handed out: well above the well-known and registered ports services use
#: locally (PostgreSQL 5432, RabbitMQ 5672, Redis 6379, the sandbox fakes' 8011-8013, 18998).
LOWEST_PORT = 20000
#: A region outside the ephemeral range smaller than this is not worth using.
MIN_REGION = 1000
#: Blocks the region is cut into, at least: the serial run's (or a script's) and seven workers'.
#: More workers (``PYTEST_XDIST_WORKER_COUNT``) cut it into more, smaller blocks.
MIN_BLOCKS = 8

_WORKER = re.compile(r"gw(\d+)")


def ephemeral_range(path: Path = PORT_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range (inclusive), or Linux's default when it cannot be read."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return (low, high) if 0 < low <= high <= 65535 else DEFAULT_EPHEMERAL


def port_region(ephemeral: tuple[int, int]) -> range:
    """Ports the kernel never hands out by itself: below the ephemeral range (from
    :data:`LOWEST_PORT`), else above it; the default region when neither has room."""
    low, high = ephemeral
    for region in (range(LOWEST_PORT, low), range(high + 1, 65536)):
        if len(region) >= MIN_REGION:
            return region
    return range(LOWEST_PORT, DEFAULT_EPHEMERAL[0])


def worker_block(region: range, worker: str | None, workers: int | None = None) -> range:
    """The part of ``region`` that belongs to ``worker`` (``gwN``; None: a serial run or a
    script); disjoint from every other worker's block of the same run."""
    blocks = max(MIN_BLOCKS, (workers or 0) + 1)
    if worker is None:
        slot = 0
    elif match := _WORKER.fullmatch(worker):
        slot = int(match[1]) % (blocks - 1) + 1
    else:  # not xdist's naming: a stable block other than the serial run's
        slot = zlib.crc32(worker.encode()) % (blocks - 1) + 1
    size = len(region) // blocks
    return region[slot * size : (slot + 1) * size]


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` now: nothing bound to it, listening or not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortAllocator:
    """A process's record of the ports it handed out; :func:`free_port` uses one per process.

    The block is worked out on every call from the environment, so a test may simulate a worker
    by setting ``PYTEST_XDIST_WORKER`` (and use its own allocator, as another process would).
    """

    def __init__(
        self, port_range_file: Path = PORT_RANGE_FILE, rng: random.Random | None = None
    ) -> None:
        self._port_range_file = port_range_file
        self._rng = rng or random.Random()  # noqa: S311 - spreading ports, not secrets
        self._lock = threading.Lock()
        self._given: set[int] = set()
        #: Per block, the offset to try next (a random one on the block's first use).
        self._next: dict[range, int] = {}

    def block(self) -> range:
        """This process's block, from the environment and the kernel's ephemeral range."""
        region = port_region(ephemeral_range(self._port_range_file))
        count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
        workers = int(count) if count.isdigit() else None
        return worker_block(region, os.environ.get("PYTEST_XDIST_WORKER") or None, workers)

    def free_port(self) -> int:
        """A port of this process's block that can be bound now and was never handed out by this
        allocator; RuntimeError when the block has none left."""
        block = self.block()
        with self._lock:
            start = self._next.get(block)
            if start is None:
                start = self._rng.randrange(len(block))
            for step in range(len(block)):
                offset = (start + step) % len(block)
                port = block[offset]
                if port in self._given or not bindable(port):
                    continue
                self._given.add(port)
                self._next[block] = (offset + 1) % len(block)
                return port
        raise RuntimeError(
            f"no free port left in {block.start}-{block.stop - 1} "
            f"({len(self._given)} handed out by this process)"
        )


_ALLOCATOR = PortAllocator()


def free_port() -> int:
    """A TCP port on 127.0.0.1 to pass to a process that will bind it: see the module's doc."""
    return _ALLOCATOR.free_port()
