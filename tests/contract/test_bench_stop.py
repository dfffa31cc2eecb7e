"""A stopped ``make bench`` cleans up after itself: SIGTERM (what ``kill`` and CI send) cancels
the run, every suite's teardown runs, and the servers it started are gone. Before, the process
ended where it stood and left its uvicorn and service processes running, holding their ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    """The live direct children of ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_sigterm_stops_the_run_and_the_servers_it_started(tmp_path: Path) -> None:
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "baseline.http.fastapi_noop", "--quick"],
        cwd=ROOT,
        env={**os.environ, "TRACKAI_ENV": "test"},
        stdout=(tmp_path / "bench.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        servers: set[int] = set()
        while time.monotonic() < deadline and not servers:
            assert bench.poll() is None, (tmp_path / "bench.log").read_text()
            servers = _children(bench.pid)
            time.sleep(0.2)
        assert servers, "the benchmark started no server within 120 s"
        time.sleep(1.0)  # the servers are up (or coming up): stop the run in the middle
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=60) == 143, (tmp_path / "bench.log").read_text()
    finally:
        if bench.poll() is None:
            bench.kill()
    log = (tmp_path / "bench.log").read_text()
    left = [pid for pid in servers if _alive(pid)]
    for pid in left:  # not to leak them into the rest of the suite when this fails
        os.kill(pid, signal.SIGKILL)
    assert not left, log
    assert "stopped: every started server and database was cleaned up" in log
