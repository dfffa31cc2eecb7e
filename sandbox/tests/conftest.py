"""A real Meta sandbox HTTP server on an ephemeral port, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from trackai_sandbox.meta import build_app
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings
from trackai_sandbox.testing import MetaSandboxClient

#: Every test runs with the sandbox clock frozen here, so event times are exact.
FROZEN_NOW = 1_790_000_000


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    with BackgroundServer(build_app(SandboxSettings(meta_seed=7))) as server:
        yield server.base_url


@pytest.fixture
def meta(sandbox_url: str) -> Iterator[MetaSandboxClient]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:
        client = MetaSandboxClient(http)
        client.reset()
        client.freeze_clock(FROZEN_NOW)
        yield client
