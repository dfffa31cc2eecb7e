"""Which failures of a call to another service are worth retrying.

A consumer retries what may succeed later (the callee unreachable, overloaded, restarting) and
fails at once on a definitive answer (the caller is not allowed, the request is wrong): retrying
those would only loop until someone fixes the configuration, hiding the problem meanwhile.
"""

from __future__ import annotations

import grpc

#: Codes that mean "could not answer now"; every other non-OK code is a definitive answer.
TRANSIENT_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


def is_transient_rpc_error(error: BaseException) -> bool:
    """False for a gRPC error with a definitive code (NOT_FOUND, PERMISSION_DENIED, ...)."""
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code() in TRANSIENT_GRPC_CODES
    return True


def rpc_error_text(error: grpc.aio.AioRpcError) -> str:
    """``CODE: details`` of a gRPC error, for logs and dead-letter reasons."""
    return f"{error.code().name}: {error.details() or ''}".rstrip(": ")
