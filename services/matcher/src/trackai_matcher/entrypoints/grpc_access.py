"""Who may call which MatcherService RPC (match reads): the one allow-list of this server."""

from __future__ import annotations

from trackai.matcher.v1 import matcher_service_pb2 as pb
from trackai_kit.grpc import AccessPolicy, rpcs

_MATCHER = pb.DESCRIPTOR.services_by_name["MatcherService"]

POLICY = AccessPolicy.of(
    {
        "console": rpcs(_MATCHER),
        "operator": rpcs(_MATCHER),
    }
)
