"""Composition root of the provisioner: builds the registry on the shared resources."""

from __future__ import annotations

from functools import partial

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.service import Resources, Wiring
from trackai_provisioner.adapters.crypto import KeyRing
from trackai_provisioner.entrypoints.grpc_registry import TenantRegistryServicer
from trackai_provisioner.service_layer.registry import TenantRegistry
from trackai_provisioner.settings import Settings

SCHEMA = "provisioner"
REGISTRY_SERVICE = pb.DESCRIPTOR.services_by_name["TenantRegistryService"].full_name


def build_registry(settings: Settings, resources: Resources) -> TenantRegistry:
    assert resources.pool is not None
    return TenantRegistry(
        resources.pool, KeyRing.parse(settings.encryption_keys.get_secret_value())
    )


async def wire(settings: Settings, resources: Resources) -> Wiring:
    registry = build_registry(settings, resources)
    servicer = TenantRegistryServicer(registry, settings.default_rate_limit_per_minute)
    return Wiring(
        grpc_services=[
            (
                REGISTRY_SERVICE,
                partial(pb_grpc.add_TenantRegistryServiceServicer_to_server, servicer),
            )
        ]
    )
