"""Who may call which provisioner RPC: the one allow-list of this server.

A caller is known by its token (``GRPC_CALLER_TOKENS``); a method missing from its list answers
PERMISSION_DENIED. Secrets leave only through the per-caller views: the webhook secrets of one
tenant to ingestion, the token of one Meta destination to the dispatcher. Add a caller's grants
here, next to the reason it needs them.
"""

from __future__ import annotations

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai_kit.grpc import AccessPolicy, rpc, rpcs

_REGISTRY = pb.DESCRIPTOR.services_by_name["TenantRegistryService"]
_PROVISIONING = pb.DESCRIPTOR.services_by_name["ProvisioningService"]

#: Reads and writes of the registry that never return a secret.
_REGISTRY_PUBLIC = tuple(
    rpc(_REGISTRY, name)
    for name in (
        "CreateTenant",
        "GetTenant",
        "ListTenants",
        "CreateFunnel",
        "UpdateTenant",
        "UpdateFunnel",
        "ListFunnels",
        "SetGatewayCredential",
        "SetMetaCredential",
        "GetTenantView",
        # Secrets reduced to their last 4 characters: recognisable, not usable.
        "GetMaskedCredentials",
    )
)

POLICY = AccessPolicy.of(
    {
        # Accepting webhooks: one tenant's view and its gateway secrets per call.
        "ingestion": [rpc(_REGISTRY, "GetWebhookConfig")],
        # Matching: funnels, look-back windows and pixels; never a secret.
        "matcher": [rpc(_REGISTRY, "GetTenantView")],
        # Delivering: the token of the one destination an event goes to.
        "dispatcher": [rpc(_REGISTRY, "GetMetaDestination")],
        # The set-up assistant: the tenant's view, test events and the tracking snippet's run,
        # and the token of the destination being set up, which `validate_meta_token` debugs.
        "agent": [
            rpc(_REGISTRY, "GetTenant"),
            rpc(_REGISTRY, "ListFunnels"),
            rpc(_REGISTRY, "GetTenantView"),
            rpc(_REGISTRY, "GetMetaDestination"),
            rpc(_PROVISIONING, "SendTestEvent"),
            rpc(_PROVISIONING, "GetProvisioningRun"),
        ],
        # The console: tenant administration (credentials are write-only) and provisioning.
        "console": [*_REGISTRY_PUBLIC, *rpcs(_PROVISIONING)],
        # The operator's `trackai` CLI: the same administration.
        "operator": [*_REGISTRY_PUBLIC, *rpcs(_PROVISIONING)],
    }
)
