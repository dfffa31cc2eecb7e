"""grpc.aio server runner (health, reflection, caller auth, tracing) and an authenticated channel.

Every calling process has its own identity (``ingestion``, ``matcher``, ``console``, ``operator``
...) and its own token. A server knows each caller by the SHA-256 of its token and lets it call
only the methods its :class:`AccessPolicy` grants that identity: a call without a known token is
UNAUTHENTICATED, a known caller outside its grants is PERMISSION_DENIED. Health and reflection
are open. Trace context travels in the call metadata in both directions.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, cast

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor

from trackai_kit.logging import get_logger
from trackai_kit.settings import (
    IDENTITIES,
    GrpcSettings,
    GrpcTlsSettings,
    local_dev_callers,
    local_dev_token,
    token_digest,
)

__all__ = [
    "IDENTITIES",
    "AccessPolicy",
    "CallerAuthInterceptor",
    "GrpcServer",
    "client_channel",
    "local_dev_callers",
    "local_dev_token",
    "rpc",
    "rpcs",
    "start_grpc_server",
    "token_digest",
]

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


def rpc(service: ServiceDescriptor, method: str) -> str:
    """The full name (``/pkg.Service/Method``) of a method, checked against the descriptor so a
    typo in a policy fails at import instead of silently granting nothing."""
    return f"/{service.full_name}/{service.methods_by_name[method].name}"


def rpcs(service: ServiceDescriptor) -> tuple[str, ...]:
    """Every method of ``service``."""
    return tuple(rpc(service, m.name) for m in service.methods)


@dataclass(frozen=True)
class AccessPolicy:
    """Which caller identity may call which methods of one server (an allow-list)."""

    grants: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, grants: Mapping[str, Iterable[str]]) -> AccessPolicy:
        unknown = set(grants) - set(IDENTITIES)
        if unknown:
            raise ValueError(
                f"unknown gRPC caller identities {sorted(unknown)}; known: {IDENTITIES}"
            )
        return cls({identity: frozenset(methods) for identity, methods in grants.items()})

    def allows(self, identity: str, method: str) -> bool:
        return method in self.grants.get(identity, frozenset())


def _denied_handler(handler: _Handler, code: grpc.StatusCode, detail: str) -> _Handler:
    """A handler of the same kind as ``handler`` that fails every call with ``code``."""

    async def deny(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, detail)

    async def deny_stream(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, detail)
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


class CallerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Finds the caller by its bearer token's digest and applies the server's allow-list."""

    def __init__(self, callers: Mapping[str, str], policy: AccessPolicy) -> None:
        if not callers:
            raise ValueError("no gRPC caller is configured (GRPC_CALLER_TOKENS is empty)")
        self._callers = {identity: digest.lower().encode() for identity, digest in callers.items()}
        self._policy = policy

    def _identity(self, presented: bytes) -> str | None:
        if not presented.startswith(b"Bearer "):
            return None
        digest = hashlib.sha256(presented[len(b"Bearer ") :]).hexdigest().encode()
        found = None
        # Every entry is compared (constant time each) so timing does not reveal which matched.
        for identity, expected in self._callers.items():
            if hmac.compare_digest(digest, expected):
                found = identity
        return found

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
        if handler is None:
            return None
        identity = self._identity(presented)
        if identity is None:
            log.warning("grpc call rejected: bad or missing token", method=method)
            return _denied_handler(
                handler, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"
            )
        if not self._policy.allows(identity, method):
            log.warning("grpc call rejected: not allowed", method=method, caller=identity)
            return _denied_handler(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {identity!r} may not call {method}",
            )
        return handler


def _tenant_of(request: Any) -> dict[str, str]:
    """The tenant a request names: its ``tenant_id``, or a ``tenant_ref`` that is an id (not a
    slug)."""
    tenant = getattr(request, "tenant_id", None) or getattr(request, "tenant_ref", None)
    if not isinstance(tenant, str) or not tenant:
        return {}
    try:
        return {"tenant_id": str(uuid.UUID(tenant))}
    except ValueError:
        return {}


class UnhandledErrorInterceptor(grpc.aio.ServerInterceptor):
    """A servicer's unexpected exception becomes one ``ERROR`` line (hence one Sentry event,
    tagged with the request's ``tenant_id`` when it has one) and an ``INTERNAL`` status whose
    detail quotes nothing of the error; aborts and cancellations pass through untouched."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }

        async def failed(
            exc: Exception, request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> None:
            log.error("unhandled error in gRPC call", method=method, exc_info=exc,
                      **_tenant_of(request))  # fmt: skip
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        if handler.unary_unary:
            # Typed by grpc's stubs for sync servers; ours are grpc.aio coroutines.
            inner = cast(Callable[..., Awaitable[Any]], handler.unary_unary)

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await failed(exc, request, context)

            return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
        if handler.unary_stream:
            inner_stream = cast(Callable[..., AsyncIterator[Any]], handler.unary_stream)

            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    async for item in inner_stream(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await failed(exc, request, context)

            return grpc.unary_stream_rpc_method_handler(stream, **kwargs)
        # Client-streaming methods keep grpc's own report (none of ours has a tenant to tag).
        return handler


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(tls: GrpcTlsSettings) -> grpc.ServerCredentials:
    """TLS for a server; with a client CA, clients must present a certificate it signed (mTLS)."""
    ca = _read(tls.ca_file) if tls.ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(tls.key_file), _read(tls.cert_file))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def channel_credentials(tls: GrpcTlsSettings) -> grpc.ChannelCredentials:
    """TLS for a client: the CA that signed the servers, and this process's certificate (mTLS)."""
    pair = (_read(tls.key_file), _read(tls.cert_file)) if tls.cert_file else (None, None)
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file) if tls.ca_file else None,
        private_key=pair[0],
        certificate_chain=pair[1],
    )


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
    policy: AccessPolicy,
) -> GrpcServer:
    """Build, register and start a server on ``settings.host:settings.port`` (0 = ephemeral);
    TLS when ``settings.tls`` has a certificate, callers limited to ``policy``."""
    if settings.tls.required and not settings.tls.cert_file:
        raise ValueError(
            "gRPC must be encrypted outside local/test: set GRPC_TLS_CERT_FILE and "
            "GRPC_TLS_KEY_FILE (and GRPC_TLS_CA_FILE for mTLS), or GRPC_TLS_BY_MESH=true when a "
            "service mesh encrypts pod traffic"
        )
    server = grpc.aio.server(
        interceptors=[
            aio_server_interceptor(),  # type: ignore[no-untyped-call]
            CallerAuthInterceptor(settings.callers, policy),
            UnhandledErrorInterceptor(),
        ]
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        reflection.enable_server_reflection(
            (*service_names, HEALTH_SERVICE, reflection.SERVICE_NAME), server
        )
    address = f"{settings.host}:{settings.port}"
    if settings.tls.cert_file:
        port = server.add_secure_port(address, server_credentials(settings.tls))
    else:
        port = server.add_insecure_port(address)
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


def client_channel(target: str, token: str, tls: GrpcTlsSettings | None = None) -> grpc.aio.Channel:
    """A channel that sends this caller's bearer token and trace context; TLS when ``tls`` names
    a CA (plaintext is for local and test, or inside a mesh that encrypts pod traffic)."""
    if not token:
        raise ValueError("GRPC_CLIENT_TOKEN is empty: this process has no gRPC identity")
    if tls is not None and tls.required and not tls.ca_file:
        raise ValueError(
            "gRPC must be encrypted outside local/test: set GRPC_TLS_CA_FILE (and the client "
            "certificate for mTLS), or GRPC_TLS_BY_MESH=true when a service mesh encrypts it"
        )
    interceptors: list[grpc.aio.ClientInterceptor] = [
        _UnaryUnaryToken(token),
        _UnaryStreamToken(token),
        _StreamUnaryToken(token),
        _StreamStreamToken(token),
        *aio_client_interceptors(),  # type: ignore[no-untyped-call]
    ]
    if tls is not None and tls.ca_file:
        return grpc.aio.secure_channel(target, channel_credentials(tls), interceptors=interceptors)
    return grpc.aio.insecure_channel(target, interceptors=interceptors)
