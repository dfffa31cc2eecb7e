"""Who may call which DispatcherService RPC (attempts, DLQ list and replay): the one
allow-list of this server."""

from __future__ import annotations

from trackai.dispatcher.v1 import dispatcher_service_pb2 as pb
from trackai_kit.grpc import AccessPolicy, rpcs
from trackai_kit.retention import RETENTION_RPCS

_DISPATCHER = pb.DESCRIPTOR.services_by_name["DispatcherService"]

POLICY = AccessPolicy.of(
    {
        "console": rpcs(_DISPATCHER),
        # The operator also runs the retention sweeps on demand (`trackai retention run`).
        "operator": [*rpcs(_DISPATCHER), *RETENTION_RPCS],
    }
)
