"""Settings of the console service: the kit's blocks plus its own ``CONSOLE_*`` knobs."""

from __future__ import annotations

from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("console")

    service_name: str = "console"
