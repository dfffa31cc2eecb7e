"""Where the benchmarks find PostgreSQL and RabbitMQ (same variables as the services)."""

from __future__ import annotations

from pydantic import Field

from trackai_kit.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, KitSettings


class BenchSettings(KitSettings):
    """``DATABASE_URL`` names the server only: benchmarks create and drop their own database."""

    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    amqp_url: str = Field(default=DEFAULT_AMQP_URL, alias="AMQP_URL")
