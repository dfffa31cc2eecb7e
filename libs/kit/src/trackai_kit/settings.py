"""Typed settings blocks shared by every service (pydantic-settings).

Each service builds one ``Settings`` object at start-up by subclassing :class:`ServiceSettings`
and adding its own ``<SVC>_*`` knobs. Nothing outside a ``settings.py`` reads ``os.environ``.
"""

from __future__ import annotations

import hashlib
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
#: Every identity that may hold a gRPC client token: the services, the console, and the
#: operator's ``trackai`` CLI. Each server's allow-list grants methods to these names.
IDENTITIES = (
    "ingestion",
    "matcher",
    "dispatcher",
    "provisioner",
    "agent",
    "console",
    "operator",
)


def local_dev_token(identity: str) -> str:
    """The public development token of ``identity`` (accepted only in local and test)."""
    return f"local-dev-{identity}-token"


def token_digest(token: str) -> str:
    """What a server stores for a caller's token (``GRPC_CALLER_TOKENS``): its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def local_dev_callers() -> dict[str, str]:
    """Digests of every identity's development token: the local and test default."""
    return {identity: token_digest(local_dev_token(identity)) for identity in IDENTITIES}


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
    "console": 50056,
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


class GrpcTlsSettings(BaseModel):
    """PEM files. A server with ``cert_file`` serves TLS and, with ``ca_file``, requires client
    certificates signed by it (mTLS); a client with ``ca_file`` verifies servers against it and
    presents ``cert_file`` when set."""

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    #: Refuse plaintext (outside local/test, unless a service mesh encrypts pod traffic).
    required: bool = False


class GrpcSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 0
    #: Caller identity → SHA-256 (hex) of the bearer token it presents (health excluded).
    callers: dict[str, str] = Field(default_factory=dict)
    tls: GrpcTlsSettings = Field(default_factory=GrpcTlsSettings)
    #: Server reflection (lists every service and message for whoever asks): local/test only.
    reflection: bool = False


class LogSettings(BaseModel):
    level: str = "INFO"
    json_output: bool = True


class TelemetrySettings(BaseModel):
    #: OTLP endpoint; empty keeps traces/metrics in-process (no exporter).
    exporter_otlp_endpoint: str = ""
    service_namespace: str = "trackai"
    #: Serve the process's metrics in Prometheus' text format on ``GET /metrics`` of its HTTP port
    #: (on in every service process through ``METRICS_PROMETHEUS``; off for bare library use).
    prometheus: bool = False


class SentrySettings(BaseModel):
    dsn: SecretStr = SecretStr("")
    traces_sample_rate: float = 0.0
    #: What Sentry groups regressions by (``trackai@<image tag>`` from the chart); empty: the
    #: kit's package version.
    release: str = ""


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
    #: `migrate` only: the role the service connects as at run time, granted its schema's rights.
    database_service_role: str = Field("", alias="DATABASE_SERVICE_ROLE")
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
    #: This process's own token when it calls another service (its identity is service_name).
    grpc_client_token: SecretStr = Field(SecretStr(""), alias="GRPC_CLIENT_TOKEN")
    #: JSON object, caller identity → SHA-256 hex of its token: who may call this process.
    grpc_caller_tokens: dict[str, str] = Field(default_factory=dict, alias="GRPC_CALLER_TOKENS")
    grpc_tls_cert_file: str = Field("", alias="GRPC_TLS_CERT_FILE")
    grpc_tls_key_file: str = Field("", alias="GRPC_TLS_KEY_FILE")
    grpc_tls_ca_file: str = Field("", alias="GRPC_TLS_CA_FILE")
    #: Plaintext gRPC outside local/test only when a service mesh encrypts pod-to-pod traffic.
    grpc_tls_by_mesh: bool = Field(False, alias="GRPC_TLS_BY_MESH")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    log_json: bool = Field(True, alias="LOG_JSON")
    otel_exporter_otlp_endpoint: str = Field("", alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    metrics_prometheus: bool = Field(True, alias="METRICS_PROMETHEUS")
    sentry_dsn: SecretStr = Field(SecretStr(""), alias="SENTRY_DSN")
    sentry_traces_sample_rate: float = Field(0.0, alias="SENTRY_TRACES_SAMPLE_RATE")
    sentry_release: str = Field("", alias="SENTRY_RELEASE")

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
            if not self.grpc_client_token.get_secret_value():
                self.grpc_client_token = SecretStr(local_dev_token(self.service_name))
            if not self.grpc_caller_tokens:
                self.grpc_caller_tokens = local_dev_callers()
            return self
        # Missing identity or TLS settings are refused where gRPC is used (server start, client
        # creation), so processes that use none (migrations) need none; development values are
        # refused here, always.
        token = self.grpc_client_token.get_secret_value()
        if token in {local_dev_token(i) for i in IDENTITIES}:
            raise ValueError(
                "GRPC_CLIENT_TOKEN is a public development token; give this service its own "
                f"strong random token outside the local sandbox (TRACKAI_ENV={self.environment})"
            )
        if token and (reason := weak_secret_reason(token)):
            raise ValueError(
                f"GRPC_CLIENT_TOKEN is too weak for TRACKAI_ENV={self.environment}: {reason} "
                "(generate one with `openssl rand -hex 32`)"
            )
        dev = set(local_dev_callers().values())
        if any(digest.lower() in dev for digest in self.grpc_caller_tokens.values()):
            raise ValueError(
                "GRPC_CALLER_TOKENS holds a development token's digest; give every caller its "
                f"own random token (TRACKAI_ENV={self.environment})"
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
            callers=self.grpc_caller_tokens,
            tls=self.grpc_tls,
            reflection=self.is_development,
        )

    @property
    def grpc_tls(self) -> GrpcTlsSettings:
        return GrpcTlsSettings(
            cert_file=self.grpc_tls_cert_file,
            key_file=self.grpc_tls_key_file,
            ca_file=self.grpc_tls_ca_file,
            required=not self.is_development and not self.grpc_tls_by_mesh,
        )

    @property
    def log(self) -> LogSettings:
        return LogSettings(level=self.log_level, json_output=self.log_json)

    @property
    def telemetry(self) -> TelemetrySettings:
        return TelemetrySettings(
            exporter_otlp_endpoint=self.otel_exporter_otlp_endpoint,
            prometheus=self.metrics_prometheus,
        )

    @property
    def sentry(self) -> SentrySettings:
        return SentrySettings(
            dsn=self.sentry_dsn,
            traces_sample_rate=self.sentry_traces_sample_rate,
            release=self.sentry_release,
        )
