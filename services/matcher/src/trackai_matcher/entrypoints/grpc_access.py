"""Who may call which MatcherService RPC (match reads): the one allow-list of this server."""

from __future__ import annotations

from trackai.matcher.v1 import matcher_service_pb2 as pb
from trackai_kit.grpc import AccessPolicy, rpcs
from trackai_kit.retention import RETENTION_RPCS

_MATCHER = pb.DESCRIPTOR.services_by_name["MatcherService"]

POLICY = AccessPolicy.of(
    {
        "console": rpcs(_MATCHER),
        # The operator also runs the retention sweeps on demand (`trackai retention run`).
        "operator": [*rpcs(_MATCHER), *RETENTION_RPCS],
    }
)
