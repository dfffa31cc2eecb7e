"""Caller identities and allow-lists, TLS, health and trace propagation on a real grpc.aio server
bound to an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace

from trackai_kit.grpc import (
    AccessPolicy,
    GrpcServer,
    client_channel,
    start_grpc_server,
    token_digest,
)
from trackai_kit.settings import GrpcSettings, GrpcTlsSettings, ServiceSettings

pytestmark = pytest.mark.integration
TOKEN = "test-token-123"
MATCHER_TOKEN = "matcher-token-456"
SERVICE = "trackai.test.v1.EchoService"
ECHO, COUNT, JOIN = (f"/{SERVICE}/{m}" for m in ("Echo", "Count", "Join"))
CALLERS = {"operator": token_digest(TOKEN), "matcher": token_digest(MATCHER_TOKEN)}
#: The operator may call everything; the matcher only Echo.
POLICY = AccessPolicy.of({"operator": [ECHO, COUNT, JOIN], "matcher": [ECHO]})
seen_trace_ids: list[int] = []


async def _echo(request: bytes, context: Any) -> bytes:
    seen_trace_ids.append(trace.get_current_span().get_span_context().trace_id)
    return b"echo:" + request


async def _count(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(3):
        yield str(i).encode()


async def _join(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return b"".join([r async for r in requests])


def _register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Echo": grpc.unary_unary_rpc_method_handler(_echo),
                    "Count": grpc.unary_stream_rpc_method_handler(_count),
                    "Join": grpc.stream_unary_rpc_method_handler(_join),
                },
            ),
        )
    )


@pytest_asyncio.fixture(loop_scope="session")
async def server() -> AsyncIterator[GrpcServer]:
    started = await start_grpc_server(
        GrpcSettings(port=0, callers=CALLERS, reflection=True), _register, [SERVICE], POLICY
    )
    yield started
    await started.stop(0)


async def test_calls_without_or_with_a_wrong_token_are_unauthenticated(server: GrpcServer) -> None:
    target = f"127.0.0.1:{server.port}"
    async with grpc.aio.insecure_channel(target) as bare:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await bare.unary_unary(f"/{SERVICE}/Echo")(b"hi")
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in bare.unary_stream(f"/{SERVICE}/Count")(b""):
                pass
        assert streamed.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with client_channel(target, "wrong-token") as wrong:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await wrong.unary_unary(f"/{SERVICE}/Echo")(b"hi")
        assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_known_caller_gets_only_the_methods_of_its_allow_list(server: GrpcServer) -> None:
    async with client_channel(f"127.0.0.1:{server.port}", MATCHER_TOKEN) as channel:
        assert await channel.unary_unary(ECHO)(b"hi") == b"echo:hi"
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await channel.stream_unary(JOIN)(iter([b"a"]))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "matcher" in (denied.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in channel.unary_stream(COUNT)(b""):
                pass
        assert streamed.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_policy_naming_an_unknown_caller_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown gRPC caller"):
        AccessPolicy.of({"everyone": [ECHO]})


async def test_token_channel_calls_succeed_and_carry_trace_context(server: GrpcServer) -> None:
    seen_trace_ids.clear()
    async with client_channel(f"127.0.0.1:{server.port}", TOKEN) as channel:
        with trace.get_tracer("test").start_as_current_span("caller") as span:
            reply = await channel.unary_unary(f"/{SERVICE}/Echo")(b"hi")
            trace_id = span.get_span_context().trace_id
        chunks = [c async for c in channel.unary_stream(f"/{SERVICE}/Count")(b"")]
        joined = await channel.stream_unary(f"/{SERVICE}/Join")(iter([b"a", b"b"]))
    assert reply == b"echo:hi"
    assert joined == b"ab"
    assert chunks == [b"0", b"1", b"2"]
    assert seen_trace_ids == [trace_id]


async def test_health_needs_no_token_and_reports_not_serving_on_shutdown(
    server: GrpcServer,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await server.set_serving(False)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_services_without_a_token(server: GrpcServer) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_reflection_is_off_unless_asked_for() -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    started = await start_grpc_server(
        GrpcSettings(port=0, callers=CALLERS), _register, [SERVICE], POLICY
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{started.port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                [r async for r in stub.ServerReflectionInfo(iter([request]))]
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await started.stop(0)


def test_only_development_environments_turn_reflection_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_CLIENT_TOKEN", "f" * 8 + "0123456789abcdef" * 3)
    monkeypatch.setenv("TRACKAI_ENV", "production")
    assert ServiceSettings(_env_file=None).grpc.reflection is False  # type: ignore[call-arg]
    monkeypatch.setenv("TRACKAI_ENV", "test")
    assert ServiceSettings(_env_file=None).grpc.reflection is True  # type: ignore[call-arg]


async def test_no_configured_caller_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="GRPC_CALLER_TOKENS"):
        await start_grpc_server(GrpcSettings(port=0), _register, [SERVICE], POLICY)


@pytest_asyncio.fixture(loop_scope="session")
async def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import trustme

    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    files = {"ca": folder / "ca.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    for name, host in (("server", "localhost"), ("client", "matcher.trackai")):
        cert = ca.issue_cert(host)
        files[f"{name}_cert"] = folder / f"{name}.pem"
        files[f"{name}_key"] = folder / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(files[f"{name}_cert"]))
        cert.private_key_pem.write_to_path(str(files[f"{name}_key"]))
    return {key: str(path) for key, path in files.items()}


async def test_tls_server_with_a_client_ca_requires_a_client_certificate(
    tls_files: dict[str, str],
) -> None:
    server_tls = GrpcTlsSettings(
        cert_file=tls_files["server_cert"],
        key_file=tls_files["server_key"],
        ca_file=tls_files["ca"],
    )
    started = await start_grpc_server(
        GrpcSettings(port=0, callers=CALLERS, tls=server_tls), _register, [SERVICE], POLICY
    )
    target = f"localhost:{started.port}"
    client_tls = GrpcTlsSettings(
        cert_file=tls_files["client_cert"],
        key_file=tls_files["client_key"],
        ca_file=tls_files["ca"],
    )
    try:
        async with client_channel(target, MATCHER_TOKEN, client_tls) as channel:
            assert await channel.unary_unary(ECHO)(b"hi", timeout=5) == b"echo:hi"
        async with client_channel(target, MATCHER_TOKEN) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await plaintext.unary_unary(ECHO)(b"hi", timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        no_cert = GrpcTlsSettings(ca_file=tls_files["ca"])
        async with client_channel(target, MATCHER_TOKEN, no_cert) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as rejected:
                await anonymous.unary_unary(ECHO)(b"hi", timeout=5)
            assert rejected.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await started.stop(0)
