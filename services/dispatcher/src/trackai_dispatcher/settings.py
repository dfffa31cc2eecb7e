"""Settings of the dispatcher service: the kit's blocks plus its own ``DISPATCHER_*`` knobs."""

from __future__ import annotations

from pydantic import Field

from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("dispatcher")

    service_name: str = "dispatcher"
    #: Where events go: the Graph API, or the sandbox fake in local runs and tests.
    meta_graph_url: str = Field("https://graph.facebook.com", alias="META_GRAPH_URL")
    meta_api_version: str = Field("v25.0", alias="META_API_VERSION")
    #: Client timeout per Meta request, seconds (Meta recommends 1.5 s).
    meta_timeout_s: float = Field(1.5, alias="META_TIMEOUT_S")
    batch_max: int = 1000
    batch_deadline_ms: int = 200
    provisioner_addr: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
