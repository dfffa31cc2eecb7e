"""run_service: serves HTTP and gRPC, stops in order on SIGTERM, exits non-zero on a crash."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import grpc.aio
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trackai_kit.grpc import AccessPolicy, GrpcServer, local_dev_callers, start_grpc_server
from trackai_kit.http import create_app
from trackai_kit.logging import configure_logging
from trackai_kit.runner import ServiceCrashed, run_service
from trackai_kit.settings import GrpcSettings, HttpSettings, LogSettings

pytestmark = pytest.mark.integration


async def _wait_listening(capsys: pytest.CaptureFixture[str], buffer: list[str]) -> dict[str, Any]:
    for _ in range(250):
        buffer.append(capsys.readouterr().out)
        for line in "".join(buffer).splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "listening":
                return json.loads(line)  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no listening line in {''.join(buffer)!r}")


async def test_objects_alive_at_start_are_frozen_while_serving() -> None:
    """What exists once the servers listen is kept out of full GC passes while the service runs
    (their pauses grow with everything the process imported), and released at shutdown."""
    gc.unfreeze()
    stop = asyncio.Event()
    seen: list[int] = []

    async def probe(stop_event: asyncio.Event) -> None:
        seen.append(gc.get_freeze_count())
        stop_event.set()

    await run_service(http_app=None, http=None, background=[probe], stop=stop)
    (frozen,) = seen
    # The test process itself holds far more than this many objects once pytest and the kit
    # are imported: all of them were frozen.
    assert frozen > 20_000
    assert gc.get_freeze_count() == 0


async def _grpc_factory() -> GrpcServer:
    return await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        lambda server: None,
        ["svc.v1.S"],
        AccessPolicy({}),
    )


async def test_serves_then_shuts_down_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(), "runner-test")
    stop = asyncio.Event()
    events: list[str] = []

    async def worker(stop_event: asyncio.Event) -> None:
        events.append("worker started")
        await stop_event.wait()
        events.append("worker stopped")

    async def closing() -> None:
        events.append("on_shutdown")

    task = asyncio.create_task(
        run_service(
            http_app=create_app("runner-test"),
            http=HttpSettings(port=0),
            grpc_server_factory=_grpc_factory,
            background=[worker],
            on_shutdown=[closing],
            stop=stop,
        )
    )
    buffer: list[str] = []
    listening = await _wait_listening(capsys, buffer)
    assert listening["service"] == "runner-test"
    async with httpx.AsyncClient(base_url=f"http://{listening['http']}") as client:
        assert (await client.get("/health")).json() == {"status": "ok", "service": "runner-test"}
    async with grpc.aio.insecure_channel(listening["grpc"]) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stop.set()
    await asyncio.wait_for(task, 10)
    assert events == ["worker started", "worker stopped", "on_shutdown"]
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=f"http://{listening['http']}") as client:
            await client.get("/health")


async def test_crashing_background_task_exits_non_zero_after_cleanup() -> None:
    hooks: list[str] = []

    async def crash(stop_event: asyncio.Event) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("consumer lost its channel")

    async def patient(stop_event: asyncio.Event) -> None:
        await stop_event.wait()
        hooks.append("patient stopped")

    async def closing() -> None:
        hooks.append("on_shutdown")

    with pytest.raises(ServiceCrashed):
        await asyncio.wait_for(
            run_service(
                http_app=None, http=None, background=[crash, patient], on_shutdown=[closing]
            ),
            10,
        )
    assert hooks == ["patient stopped", "on_shutdown"]


SCRIPT = textwrap.dedent(
    """
    import asyncio
    from trackai_kit.grpc import AccessPolicy, local_dev_callers, start_grpc_server
    from trackai_kit.http import create_app
    from trackai_kit.runner import bootstrap_observability, run_service
    from trackai_kit.settings import GrpcSettings, HttpSettings, ServiceSettings

    settings = ServiceSettings(service_name="sigterm-test")
    bootstrap_observability(settings)

    async def grpc_factory():
        return await start_grpc_server(
            GrpcSettings(port=0, callers=local_dev_callers()), lambda s: None, [], AccessPolicy({})
        )

    asyncio.run(run_service(
        http_app=create_app("sigterm-test"), http=HttpSettings(port=0),
        grpc_server_factory=grpc_factory,
    ))
    """
)


def test_sigterm_stops_the_process_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY", "OTEL"))}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        listening: dict[str, Any] | None = None
        lines: list[str] = []
        while listening is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("{") and json.loads(line).get("event") == "listening":
                listening = json.loads(line)
        assert listening is not None, "".join(lines)
        assert httpx.get(f"http://{listening['http']}/health").status_code == 200
        proc.send_signal(signal.SIGTERM)
        remaining, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + remaining
    events = [json.loads(line)["event"] for line in remaining.splitlines() if line.startswith("{")]
    assert "shutting down" in events
    assert events[-1] == "stopped"


def test_crash_gives_a_non_zero_exit_status() -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from trackai_kit.runner import run_service

        async def crash(stop):
            raise RuntimeError("boom")

        asyncio.run(run_service(http_app=None, http=None, background=[crash]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30)
    assert result.returncode != 0
    assert b"ServiceCrashed" in result.stderr
