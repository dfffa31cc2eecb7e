"""The GTM client against the GTM fake, over real HTTP with the server's keep-alive timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from trackai_provisioner.adapters.gtm import GtmApi, gtm_credentials

pytestmark = pytest.mark.integration


async def test_a_create_after_an_idle_pause_does_not_hit_a_closed_connection(
    sandboxes: Any,
) -> None:
    """At 0.25 requests/s the server closes kept-alive sockets between calls (uvicorn after 5 s,
    Google's front ends likewise); httplib2 will not resend a POST on such a socket. Found when
    the README's `trackai provision` step failed with "GTM unreachable" on the local stack."""
    api = GtmApi(sandboxes.gtm, "6000000001", gtm_credentials("token"), requests_per_second=1000)
    first = await api.create_container("trackai-idle-server", "server")
    await asyncio.sleep(6)  # longer than the fake's (uvicorn's default) 5 s keep-alive
    second = await api.create_container("trackai-idle-web", "web")
    assert first.container_id != second.container_id
    names = {c.get("name") for c in sandboxes.gtm_containers()}
    assert {"trackai-idle-server", "trackai-idle-web"} <= names
