"""Which fakes ``python -m trackai_sandbox serve`` starts, and on which port.

Adding a fake is a new module with ``build_app(settings) -> ASGI app`` plus one line in
:data:`FAKES` (its port setting already exists: cloudflare 8011, stape 8012, gtm 8013, llm 8014).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp

from trackai_sandbox import cloudflare, gtm, llm, meta, stape
from trackai_sandbox.server import Listener, serve_all
from trackai_sandbox.settings import SandboxSettings


@dataclass(frozen=True)
class Fake:
    name: str
    port: Callable[[SandboxSettings], int]
    build_app: Callable[[SandboxSettings], ASGIApp]


FAKES: tuple[Fake, ...] = (
    Fake("meta", lambda s: s.meta_port, meta.build_app),
    Fake("cloudflare", lambda s: s.cloudflare_port, cloudflare.build_app),
    Fake("stape", lambda s: s.stape_port, stape.build_app),
    Fake("gtm", lambda s: s.gtm_port, gtm.build_app),
    Fake("llm", lambda s: s.llm_port, llm.build_app),
)


def listeners(settings: SandboxSettings, only: Sequence[str] = ()) -> list[Listener]:
    chosen = [fake for fake in FAKES if not only or fake.name in only]
    unknown = set(only) - {fake.name for fake in FAKES}
    if unknown:
        raise ValueError(f"unknown fake(s): {', '.join(sorted(unknown))}")
    return [
        Listener(fake.name, fake.build_app(settings), settings.host, fake.port(settings))
        for fake in chosen
    ]


async def serve(settings: SandboxSettings, only: Sequence[str] = ()) -> None:
    await serve_all(listeners(settings, only), log_level=settings.log_level)
