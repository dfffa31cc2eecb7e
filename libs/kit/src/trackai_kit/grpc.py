"""grpc.aio server runner (health, reflection, token auth, tracing) and an authenticated channel.

Every call except the health and reflection services must carry ``authorization: Bearer <token>``;
trace context travels in the call metadata in both directions.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor

from trackai_kit.logging import get_logger
from trackai_kit.settings import GrpcSettings

log = get_logger(__name__)

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_EXEMPT_PREFIXES = (
    f"/{HEALTH_SERVICE}/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
AUTHORIZATION = "authorization"
# A string: grpc.RpcMethodHandler is generic only in the type stubs.
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _denied_handler(handler: _Handler, detail: str) -> _Handler:
    """A handler of the same kind as ``handler`` that fails every call with UNAUTHENTICATED."""

    async def deny(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, detail)

    async def deny_stream(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, detail)
        yield  # pragma: no cover - makes this an async generator, as streaming handlers must be

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    return grpc.stream_stream_rpc_method_handler(deny_stream, **kwargs)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without the expected bearer token (constant-time comparison)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("gRPC auth token must not be empty")
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        method: str = handler_call_details.method
        if method.startswith(_EXEMPT_PREFIXES):
            return await continuation(handler_call_details)
        presented = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == AUTHORIZATION:
                presented = value.encode() if isinstance(value, str) else value
                break
        handler = await continuation(handler_call_details)
        if handler is None or hmac.compare_digest(presented, self._expected):
            return handler
        log.warning("grpc call rejected: bad or missing token", method=method)
        return _denied_handler(handler, "missing or invalid bearer token")


class GrpcServer:
    """A started grpc.aio server: its bound ``port``, its ``health`` servicer, and :meth:`stop`."""

    def __init__(
        self,
        server: grpc.aio.Server,
        host: str,
        port: int,
        health_servicer: Any,
        services: Sequence[str],
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.health = health_servicer
        self._services = tuple(services)

    @property
    def address(self) -> str:
        """``host:port`` the server listens on."""
        return f"{self.host}:{self.port}"

    async def set_serving(self, serving: bool) -> None:
        """Report every service (and the overall server) as SERVING or NOT_SERVING."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self._services):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, stop accepting calls, wait up to ``grace`` for running ones."""
        await self.set_serving(False)
        await self.server.stop(grace)


async def start_grpc_server(
    settings: GrpcSettings,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
) -> GrpcServer:
    """Build, register and start a server on ``settings.host:settings.port`` (0 = ephemeral)."""
    server = grpc.aio.server(
        interceptors=[
            aio_server_interceptor(),  # type: ignore[no-untyped-call]
            TokenAuthInterceptor(settings.auth_token.get_secret_value()),
        ]
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        reflection.enable_server_reflection(
            (*service_names, HEALTH_SERVICE, reflection.SERVICE_NAME), server
        )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise RuntimeError(f"could not bind gRPC server to {settings.host}:{settings.port}")
    await server.start()
    started = GrpcServer(server, settings.host, port, health_servicer, service_names)
    await started.set_serving(True)
    return started


class _BearerToken:
    """Adds ``authorization: Bearer <token>`` to the metadata of an outgoing call."""

    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token}"

    def details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata[AUTHORIZATION] = self._value
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
        )


# grpc.aio files an interceptor under the first call kind it matches, so each kind needs its own
# object.
class _UnaryUnaryToken(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self.details(client_call_details), request)


class _UnaryStreamToken(_BearerToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self.details(client_call_details), request)


class _StreamUnaryToken(_BearerToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        return await continuation(self.details(client_call_details), requests)


class _StreamStreamToken(_BearerToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        return await continuation(self.details(client_call_details), requests)


def client_channel(target: str, token: str) -> grpc.aio.Channel:
    """An insecure channel (in-cluster traffic) that sends the bearer token and trace context."""
    interceptors: list[grpc.aio.ClientInterceptor] = [
        _UnaryUnaryToken(token),
        _UnaryStreamToken(token),
        _StreamUnaryToken(token),
        _StreamStreamToken(token),
        *aio_client_interceptors(),  # type: ignore[no-untyped-call]
    ]
    return grpc.aio.insecure_channel(target, interceptors=interceptors)
