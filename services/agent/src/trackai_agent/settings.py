"""Settings of the agent service: the kit's blocks plus its own ``AGENT_*`` knobs."""

from __future__ import annotations

from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("agent")

    service_name: str = "agent"
