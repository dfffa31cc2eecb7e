"""Settings of the matcher service: the kit's blocks plus its own ``MATCHER_*`` knobs."""

from __future__ import annotations

from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("matcher")

    service_name: str = "matcher"
