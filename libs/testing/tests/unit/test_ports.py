"""trackai_testing.ports: ports that two xdist workers (or the kernel) can never both hand out."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from trackai_testing import ports
from trackai_testing.ports import PortAllocator, ephemeral_range, free_port, port_region


@pytest.fixture
def serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)


def _as_worker(monkeypatch: pytest.MonkeyPatch, worker: str | None, n: int) -> list[int]:
    """``n`` ports from a fresh allocator (another process) with ``worker``'s environment."""
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    allocator = PortAllocator()
    got = [allocator.free_port() for _ in range(n)]
    assert all(port in allocator.block() for port in got)
    return got


def _range_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ip_local_port_range"
    path.write_text(text)
    return path


def test_the_ephemeral_range_is_read_and_falls_back_to_linux_default(tmp_path: Path) -> None:
    assert ephemeral_range(_range_file(tmp_path, "40000\t50000\n")) == (40000, 50000)
    assert ephemeral_range(tmp_path / "absent") == (32768, 60999)
    assert ephemeral_range(_range_file(tmp_path, "garbage")) == (32768, 60999)


def test_the_region_lies_outside_the_ephemeral_range() -> None:
    assert port_region((32768, 60999)) == range(20000, 32768)
    # No room below: above it.
    assert port_region((1024, 60999)) == range(61000, 65536)
    # No room anywhere: the default region (only the bind check protects it then).
    assert port_region((1024, 65000)) == range(20000, 32768)


def test_two_workers_get_disjoint_ports_outside_the_ephemeral_range_and_no_repeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    low, high = ephemeral_range()
    gw0 = _as_worker(monkeypatch, "gw0", 150)
    gw1 = _as_worker(monkeypatch, "gw1", 150)
    main = _as_worker(monkeypatch, None, 150)
    for got in (gw0, gw1, main):
        assert len(set(got)) == len(got), "a port handed out twice"
        assert not [port for port in got if low <= port <= high], "a port in the ephemeral range"
    assert not set(gw0) & set(gw1)
    assert not (set(gw0) | set(gw1)) & set(main)


def test_every_worker_of_a_large_run_has_its_own_block() -> None:
    region = port_region((32768, 60999))
    blocks = [ports.worker_block(region, None, 16)]
    blocks += [ports.worker_block(region, f"gw{n}", 16) for n in range(16)]
    seen: set[int] = set()
    for block in blocks:
        assert len(block) >= 500
        assert not seen & set(block)
        assert block.start >= region.start and block.stop <= region.stop
        seen |= set(block)


def test_the_block_follows_the_kernels_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serial: None
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    allocator = PortAllocator(_range_file(tmp_path, "1024 60999"))
    port = allocator.free_port()
    assert port > 60999
    assert allocator.block().start > 60999


@pytest.fixture
def listener(serial: None) -> Iterator[tuple[socket.socket, int]]:
    """A socket listening, as a gRPC server does (wildcard address, SO_REUSEPORT), on the port a
    seeded allocator hands out first."""
    first = PortAllocator(rng=random.Random(7)).free_port()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("0.0.0.0", first))
        sock.listen()
        yield sock, first


def test_a_port_something_listens_on_is_skipped(listener: tuple[socket.socket, int]) -> None:
    _, taken = listener
    allocator = PortAllocator(rng=random.Random(7))
    port = allocator.free_port()
    assert port != taken
    assert port in allocator.block()


def test_a_port_is_never_handed_out_twice_even_when_still_bindable(
    monkeypatch: pytest.MonkeyPatch, serial: None
) -> None:
    allocator = PortAllocator()
    block = allocator.block()
    start = next(p for p in block if all(ports.bindable(p + i) for i in range(3)))
    monkeypatch.setattr(allocator, "block", lambda: range(start, start + 3))
    got = {allocator.free_port() for _ in range(3)}
    assert got == {start, start + 1, start + 2}
    # All three are still bindable (nothing started on them): none is offered again.
    with pytest.raises(RuntimeError, match="no free port left"):
        allocator.free_port()


def test_the_process_wide_helper_hands_out_distinct_ports_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    got = [free_port() for _ in range(20)]
    assert len(set(got)) == 20
    assert all(not low <= port <= high for port in got)
