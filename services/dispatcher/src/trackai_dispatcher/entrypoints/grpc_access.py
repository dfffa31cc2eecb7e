"""Who may call which DispatcherService RPC (attempts, DLQ list and replay): the one
allow-list of this server."""

from __future__ import annotations

from trackai.dispatcher.v1 import dispatcher_service_pb2 as pb
from trackai_kit.grpc import AccessPolicy, rpcs

_DISPATCHER = pb.DESCRIPTOR.services_by_name["DispatcherService"]

POLICY = AccessPolicy.of(
    {
        "console": rpcs(_DISPATCHER),
        "operator": rpcs(_DISPATCHER),
    }
)
