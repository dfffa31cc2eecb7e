"""Who may call which UserAdminService RPC: the one allow-list of this server.

Accounts are administered by the operator's ``trackai user`` command only; no service calls it.
"""

from __future__ import annotations

from trackai.console.v1 import console_service_pb2 as pb
from trackai_kit.grpc import AccessPolicy, rpcs

_USERS = pb.DESCRIPTOR.services_by_name["UserAdminService"]

POLICY = AccessPolicy.of({"operator": rpcs(_USERS)})
