"""Cross-check with Meta's official SDK: what ``facebook-business`` builds and sends, the fake
accepts, and the hashes it stores are the SDK's own."""

from __future__ import annotations

import pytest

from trackai_sandbox.testing import DEMO_PIXEL_ID, DEMO_TOKEN, MetaSandboxClient, sha256_hex

pytest.importorskip("facebook_business", reason="install the sandbox 'test' extra")

from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.user_data import UserData
from facebook_business.api import FacebookAdsApi
from facebook_business.session import FacebookSession

NOW = 1_790_000_000  # the clock the ``meta`` fixture freezes


def test_sdk_built_purchase_is_accepted(meta: MetaSandboxClient, sandbox_url: str) -> None:
    session = FacebookSession(access_token=DEMO_TOKEN)
    session.GRAPH = sandbox_url  # the SDK's base URL is a session attribute
    FacebookAdsApi.set_default_api(FacebookAdsApi(session, api_version="v25.0"))
    event = Event(
        event_name="Purchase",
        event_time=NOW - 120,
        event_id="sdk-order-7",
        action_source=ActionSource.WEBSITE,
        event_source_url="https://shop.example/thanks",
        user_data=UserData(
            emails=["  Buyer@Example.com "],
            first_names=["Maria"],
            client_ip_address="203.0.113.7",
            client_user_agent="Mozilla/5.0",
            fbc=f"fb.1.{(NOW - 3600) * 1000}.IwAR2xYzAbC",
            fbp=f"fb.1.{(NOW - 3600) * 1000}.1234567890",
        ),
        custom_data=CustomData(value=129.9, currency="brl"),
    )

    response = EventRequest(
        pixel_id=DEMO_PIXEL_ID, events=[event], test_event_code="TEST42"
    ).execute()

    assert response.events_received == 1
    assert response.fbtrace_id
    [stored] = meta.events(event_id="sdk-order-7")
    assert stored["test_event_code"] == "TEST42"
    assert stored["event"]["user_data"]["em"] == [sha256_hex("buyer@example.com")]
    assert stored["event"]["user_data"]["fn"] == [sha256_hex("maria")]
    # The SDK posts form fields with ``data`` as a JSON string, as the real API expects.
    [request] = meta.requests(pixel_id=DEMO_PIXEL_ID)
    assert request["body"]["data"][0]["event_id"] == "sdk-order-7"
