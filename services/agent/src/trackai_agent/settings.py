"""Settings of the agent service: the kit's blocks plus its own ``AGENT_*`` knobs."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from trackai_kit.settings import ServiceSettings, service_config

#: The sandbox's published demo app token (nothing real), used in local/test when none is set.
SANDBOX_META_APP_TOKEN = "100000000000001|sandbox-app-secret"  # noqa: S105


class Settings(ServiceSettings):
    model_config = service_config("agent")

    service_name: str = "agent"

    provisioner_target: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
    ingestion_grpc_target: str = Field("127.0.0.1:50051", alias="INGESTION_GRPC_TARGET")
    #: Seconds to wait for the provisioner or ingestion.
    grpc_timeout_s: float = 10.0

    # Meta's Graph API (the same settings the provisioner reads). The app token is
    # ``<app id>|<app secret>``: its app id is the one a seller's token must belong to.
    meta_graph_url: str = Field("https://graph.facebook.com", alias="META_GRAPH_URL")
    meta_api_version: str = Field("v25.0", alias="META_API_VERSION")
    meta_app_token: SecretStr = Field(SecretStr(""), alias="META_APP_TOKEN")

    #: Public base URL of ingestion, for the webhook URLs the agent tells sellers to paste.
    webhook_base_url: str = "http://127.0.0.1:8001"
    #: Landing page probes: total time, body size, redirects.
    fetch_timeout_s: float = 10.0
    fetch_max_bytes: int = 2_000_000
    fetch_max_redirects: int = 5
    #: Let probes reach 127.0.0.1 (local stack and tests only; refused outside local/test).
    fetch_allow_loopback: bool = False
    #: Extra CA bundle trusted by probes (a test CA); empty = the system store.
    fetch_ca_file: str = ""
    #: Chromium for pages whose pixel is injected by JavaScript; empty disables rendering.
    chromium_path: str = ""

    # The language model: any OpenAI-compatible chat-completions endpoint. Without a key the
    # guided flow drives the same tools deterministically.
    llm_base_url: str = "https://api.openai.com/v1"
    llm_api_key: SecretStr = SecretStr("")
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 30.0
    max_tool_calls_per_turn: int = Field(4, ge=1)
    #: Tokens (prompt + completion) a session may spend; past it the guided flow takes over.
    max_session_tokens: int = Field(200_000, ge=1)

    #: Slack-compatible incoming webhook receiving escalations; empty keeps them in the queue only.
    support_webhook_url: SecretStr = SecretStr("")
    #: Link to a transcript in the console; ``{session_id}`` is replaced.
    transcript_url_template: str = "http://127.0.0.1:8000/operador/conversas/{session_id}"

    @model_validator(mode="after")
    def _local_defaults(self) -> Settings:
        local = self.environment in ("local", "test")
        if self.fetch_allow_loopback and not local:
            raise ValueError(
                "AGENT_FETCH_ALLOW_LOOPBACK lets landing-page probes reach this host; it is "
                f"refused outside local/test (TRACKAI_ENV={self.environment})"
            )
        if local and not self.meta_app_token.get_secret_value():
            self.meta_app_token = SecretStr(SANDBOX_META_APP_TOKEN)
        return self

    @property
    def meta_app_id(self) -> str:
        return self.meta_app_token.get_secret_value().partition("|")[0]

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_api_key.get_secret_value())
