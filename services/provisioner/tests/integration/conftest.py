"""A real provisioner gRPC server on an ephemeral port, on a freshly migrated database."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import asyncpg
import grpc
import pytest

from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import client_channel, start_grpc_server
from trackai_kit.postgres import create_pool
from trackai_kit.settings import GrpcSettings, PostgresSettings
from trackai_provisioner.adapters.crypto import KeyRing
from trackai_provisioner.bootstrap import REGISTRY_SERVICE
from trackai_provisioner.entrypoints.grpc_registry import TenantRegistryServicer
from trackai_provisioner.service_layer.registry import TenantRegistry

TOKEN = "test-token-provisioner"


@dataclass
class Provisioner:
    stub: pb_grpc.TenantRegistryServiceStub
    registry: TenantRegistry
    pool: asyncpg.Pool
    port: int
    key_spec: str


@pytest.fixture
async def provisioner(database_url: str) -> AsyncIterator[Provisioner]:
    key_spec = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    pool = await create_pool(PostgresSettings(url=database_url), schema="provisioner")
    registry = TenantRegistry(pool, KeyRing.parse(key_spec))
    servicer = TenantRegistryServicer(registry, default_rate_limit=100)
    server = await start_grpc_server(
        GrpcSettings(port=0, auth_token=TOKEN),  # type: ignore[arg-type]
        partial(pb_grpc.add_TenantRegistryServiceServicer_to_server, servicer),
        [REGISTRY_SERVICE],
    )
    channel = client_channel(f"127.0.0.1:{server.port}", TOKEN)
    try:
        yield Provisioner(
            pb_grpc.TenantRegistryServiceStub(channel), registry, pool, server.port, key_spec
        )
    finally:
        await channel.close()
        await server.stop(0)
        await pool.close()


@pytest.fixture
def unauthenticated_channel(provisioner: Provisioner) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{provisioner.port}")
