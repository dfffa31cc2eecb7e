"""Typed settings blocks shared by every service (pydantic-settings).

Each service builds one ``Settings`` object at start-up by subclassing :class:`ServiceSettings`
and adding its own ``<SVC>_*`` knobs. Nothing outside a ``settings.py`` reads ``os.environ``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["local", "test", "staging", "production"]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/trackai"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

#: Environments where the published development defaults (token, key ring, sandbox URLs) are
#: accepted. Anything else, including an unset TRACKAI_ENV, is treated as production.
DEVELOPMENT_ENVIRONMENTS = ("local", "test")

#: Accepted only when TRACKAI_ENV is local or test.
LOCAL_DEV_GRPC_TOKEN = "local-dev-token"  # noqa: S105 - a public development default, refused in prod

#: Shared secrets outside local/test: at least this long and this much estimated entropy, which
#: `openssl rand -hex 32` or `python -c "import secrets; print(secrets.token_urlsafe(32))"` give.
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 96.0


def estimated_entropy_bits(value: str) -> float:
    """Length x Shannon entropy per character: a cheap ceiling on the value's randomness.

    It catches the usual weak secrets (short, repeated, a small alphabet); it cannot tell a long
    pass-phrase from random data, hence the length minimum next to it.
    """
    if not value:
        return 0.0
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return per_char * len(value)


def weak_secret_reason(value: str) -> str | None:
    """Why ``value`` is too weak to be a shared secret in production, or ``None``."""
    if len(value) < MIN_SECRET_LENGTH:
        return f"it has {len(value)} characters, at least {MIN_SECRET_LENGTH} are required"
    bits = estimated_entropy_bits(value)
    if bits < MIN_SECRET_BITS:
        return f"it looks like about {bits:.0f} bits of randomness, at least {MIN_SECRET_BITS:.0f}"
    return None


def non_https_reason(url: str) -> str | None:
    """Why ``url`` may not carry credentials to a provider in production, or ``None``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "it is not a URL"
    if parts.scheme != "https":
        # The scheme only: a URL may carry credentials that must not reach the logs.
        return f"its scheme is {parts.scheme or 'missing'!r}, not 'https'"
    if not host:
        return "it has no host"
    return None


#: Default ports in the design's order (console first for HTTP, ingestion first for gRPC).
HTTP_PORTS = {
    "console": 8000,
    "ingestion": 8001,
    "matcher": 8002,
    "dispatcher": 8003,
    "provisioner": 8004,
    "agent": 8005,
}
GRPC_PORTS = {
    "ingestion": 50051,
    "matcher": 50052,
    "dispatcher": 50053,
    "provisioner": 50054,
    "agent": 50055,
}


class KitSettings(BaseSettings):
    """Base class: reads the environment and a local ``.env``; unknown keys are ignored."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )


def service_config(service: str) -> SettingsConfigDict:
    """Config for a service's Settings: fields without an alias read ``<SERVICE>_<FIELD>``."""
    return SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        env_prefix=f"{service.upper()}_",
    )


class PostgresSettings(BaseModel):
    url: str = DEFAULT_DATABASE_URL
    pool_min: int = 1
    pool_max: int = 10
    command_timeout_s: float = 10.0


class AmqpSettings(BaseModel):
    url: str = DEFAULT_AMQP_URL
    prefetch: int = 64
    #: Prefix for every queue/exchange name; tests use it to get their own topology.
    prefix: str = ""
    #: Bound on connecting and on waiting for a publisher confirm, so a dead broker fails fast.
    connect_timeout_s: float = 5.0
    publish_timeout_s: float = 10.0


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 0


class GrpcSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 0
    #: Bearer token expected in the ``authorization`` metadata of every call (health excluded).
    auth_token: SecretStr = SecretStr("")
    #: Server reflection (lists every service and message for whoever asks): local/test only.
    reflection: bool = False


class LogSettings(BaseModel):
    level: str = "INFO"
    json_output: bool = True


class TelemetrySettings(BaseModel):
    #: OTLP endpoint; empty keeps traces/metrics in-process (no exporter).
    exporter_otlp_endpoint: str = ""
    service_namespace: str = "trackai"


class SentrySettings(BaseModel):
    dsn: SecretStr = SecretStr("")
    traces_sample_rate: float = 0.0


class ServiceSettings(KitSettings):
    """Settings every service has.

    Subclasses set ``service_name``, ``model_config = service_config("<svc>")`` and add their own
    ``<SVC>_*`` knobs.
    """

    #: Fields holding provider URLs that receive credentials or personal data: https only
    #: outside local/test (subclasses list theirs).
    https_only_fields: ClassVar[tuple[str, ...]] = ()

    service_name: str = "trackai"
    #: Production unless told otherwise: a bare image must never run on development defaults.
    environment: Environment = Field("production", alias="TRACKAI_ENV")
    database_url: str = Field(DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    amqp_url: str = Field(DEFAULT_AMQP_URL, alias="AMQP_URL")
    amqp_prefix: str = Field("", alias="AMQP_PREFIX")
    amqp_prefetch: int = Field(64, alias="AMQP_PREFETCH")
    postgres_pool_max: int = Field(10, alias="POSTGRES_POOL_MAX")
    # Listening addresses are read with the service's own prefix (``INGESTION_HTTP_PORT`` ...),
    # so one ``.env`` can serve every process of the local stack.
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    grpc_host: str = "127.0.0.1"
    grpc_port: int | None = None
    grpc_auth_token: SecretStr = Field(SecretStr(LOCAL_DEV_GRPC_TOKEN), alias="GRPC_AUTH_TOKEN")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    log_json: bool = Field(True, alias="LOG_JSON")
    otel_exporter_otlp_endpoint: str = Field("", alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    sentry_dsn: SecretStr = Field(SecretStr(""), alias="SENTRY_DSN")
    sentry_traces_sample_rate: float = Field(0.0, alias="SENTRY_TRACES_SAMPLE_RATE")

    @property
    def is_development(self) -> bool:
        """Local sandbox or test suite: development defaults and tooling are allowed."""
        return self.environment in DEVELOPMENT_ENVIRONMENTS

    def setting_name(self, field: str) -> str:
        """The environment variable a field is read from (its alias, else ``<PREFIX><FIELD>``)."""
        alias = type(self).model_fields[field].alias
        if alias:
            return alias
        prefix = str(self.model_config.get("env_prefix", ""))
        return f"{prefix}{field}".upper()

    @model_validator(mode="after")
    def _unsafe_defaults_fail_outside_local(self) -> ServiceSettings:
        if self.is_development:
            return self
        token = self.grpc_auth_token.get_secret_value()
        if not token or token == LOCAL_DEV_GRPC_TOKEN:
            raise ValueError(
                "GRPC_AUTH_TOKEN must be set to a strong random value outside the local "
                f"sandbox (TRACKAI_ENV={self.environment})"
            )
        if reason := weak_secret_reason(token):
            raise ValueError(
                f"GRPC_AUTH_TOKEN is too weak for TRACKAI_ENV={self.environment}: {reason} "
                "(generate one with `openssl rand -hex 32`)"
            )
        for name in self.https_only_fields:
            if reason := non_https_reason(str(getattr(self, name))):
                raise ValueError(
                    f"{self.setting_name(name)} must use https outside local/test "
                    f"(TRACKAI_ENV={self.environment}): {reason}"
                )
        return self

    # Typed views of the flat environment, handed to the kit's adapters.
    @property
    def postgres(self) -> PostgresSettings:
        return PostgresSettings(url=self.database_url, pool_max=self.postgres_pool_max)

    @property
    def amqp(self) -> AmqpSettings:
        return AmqpSettings(url=self.amqp_url, prefix=self.amqp_prefix, prefetch=self.amqp_prefetch)

    @property
    def http(self) -> HttpSettings:
        port = (
            self.http_port if self.http_port is not None else HTTP_PORTS.get(self.service_name, 0)
        )
        return HttpSettings(host=self.http_host, port=port)

    @property
    def grpc(self) -> GrpcSettings:
        port = (
            self.grpc_port if self.grpc_port is not None else GRPC_PORTS.get(self.service_name, 0)
        )
        return GrpcSettings(
            host=self.grpc_host,
            port=port,
            auth_token=self.grpc_auth_token,
            reflection=self.is_development,
        )

    @property
    def log(self) -> LogSettings:
        return LogSettings(level=self.log_level, json_output=self.log_json)

    @property
    def telemetry(self) -> TelemetrySettings:
        return TelemetrySettings(exporter_otlp_endpoint=self.otel_exporter_otlp_endpoint)

    @property
    def sentry(self) -> SentrySettings:
        return SentrySettings(
            dsn=self.sentry_dsn, traces_sample_rate=self.sentry_traces_sample_rate
        )
