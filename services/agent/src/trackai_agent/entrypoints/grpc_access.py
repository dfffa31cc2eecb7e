"""Who may call which AgentService RPC: the one allow-list of this server.

The console runs the seller's chat and the operators' escalation queue through it; the operator's
``trackai`` CLI may read transcripts and take sessions over. No service calls the agent.
"""

from __future__ import annotations

from trackai.agent.v1 import agent_service_pb2 as pb
from trackai_kit.grpc import AccessPolicy, rpcs

_AGENT = pb.DESCRIPTOR.services_by_name["AgentService"]

POLICY = AccessPolicy.of({"console": rpcs(_AGENT), "operator": rpcs(_AGENT)})
