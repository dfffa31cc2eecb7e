"""Who may call which IngestionService RPC (receipt reads): the one allow-list of this server."""

from __future__ import annotations

from trackai.ingestion.v1 import ingestion_service_pb2 as pb
from trackai_kit.grpc import AccessPolicy, rpc, rpcs
from trackai_kit.retention import RETENTION_RPCS

_INGESTION = pb.DESCRIPTOR.services_by_name["IngestionService"]

POLICY = AccessPolicy.of(
    {
        "agent": rpcs(_INGESTION),  # shows the seller whether a test webhook arrived
        "console": rpcs(_INGESTION),
        # The webhook lock: provisioning and publishing wait for a verified webhook.
        "provisioner": [rpc(_INGESTION, "GetWebhookActivity")],
        # The operator also runs the retention sweeps on demand (`trackai retention run`).
        "operator": [*rpcs(_INGESTION), *RETENTION_RPCS],
    }
)
