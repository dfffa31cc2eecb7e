"""Settings of the ingestion service: the kit's blocks plus its own ``INGESTION_*`` knobs."""

from __future__ import annotations

from pydantic import Field

from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("ingestion")

    service_name: str = "ingestion"
    #: Default per-tenant webhook rate limit (requests per minute); tenants may override it.
    rate_limit_per_minute: int = Field(100, alias="INGESTION_RATE_LIMIT_PER_MINUTE")
    #: Shared limiter state across replicas.
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    provisioner_addr: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
