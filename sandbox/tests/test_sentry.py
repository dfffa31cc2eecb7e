"""The Sentry fake over real HTTP: the official SDK's envelopes arrive intact and can be queried;
malformed or unauthenticated envelopes get Sentry's answers."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import httpx
import pytest
import sentry_sdk

from trackai_sandbox.sentry import SentrySink, parse_envelope


@pytest.fixture(scope="module")
def fake() -> Iterator[SentrySink]:
    with SentrySink() as running:
        yield running


@pytest.fixture
def sink(fake: SentrySink) -> Iterator[httpx.Client]:
    """The fake's raw HTTP side, emptied first."""
    fake.reset()
    with httpx.Client(base_url=fake.base_url, timeout=10) as http:
        yield http


def test_the_official_sdk_delivers_an_error_event(sink: httpx.Client, fake: SentrySink) -> None:
    sentry_sdk.init(dsn=fake.dsn, default_integrations=False, auto_enabling_integrations=False)
    try:
        try:
            raise ValueError("boom in the sandbox")
        except ValueError:
            event_id = sentry_sdk.capture_exception()
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)
    events = fake.events()
    assert [e["event_id"] for e in events] == [event_id]
    [exception] = events[0]["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("ValueError", "boom in the sandbox")
    items = fake.items("event")
    assert items[0]["public_key"] == "sandbox"
    assert items[0]["project_id"] == "1"


def test_gzip_envelope_with_explicit_lengths_and_several_items(sink: httpx.Client) -> None:
    event = json.dumps({"event_id": "a" * 32, "message": "line\nbreak"}).encode()
    body = (
        b'{"event_id":"' + b"a" * 32 + b'"}\n'
        + json.dumps({"type": "event", "length": len(event)}).encode() + b"\n" + event + b"\n"
        + b'{"type":"attachment","length":3}\nabc\n'
    )  # fmt: skip
    answer = sink.post(
        "/api/42/envelope/",
        content=gzip.compress(body),
        headers={"Content-Encoding": "gzip", "X-Sentry-Auth": "Sentry sentry_key=k1, v=7"},
    )
    assert answer.status_code == 200
    assert answer.json() == {"id": "a" * 32}
    items = sink.get("/_sandbox/items").json()["items"]
    assert [(i["type"], i["project_id"], i["public_key"]) for i in items] == [
        ("event", "42", "k1"),
        ("attachment", "42", "k1"),
    ]
    assert items[0]["payload"]["message"] == "line\nbreak"
    assert items[1]["payload"] == "abc"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{}\n{"type":"event"}\n{}\n', {}, 401),
        (b"not json\n", {"X-Sentry-Auth": "Sentry sentry_key=k"}, 400),
        (b'{}\n{"length":2}\n{}\n', {"X-Sentry-Auth": "Sentry sentry_key=k"}, 400),
        (b'{}\n{"type":"event","length":99}\n{}\n', {"X-Sentry-Auth": "Sentry sentry_key=k"}, 400),
    ],
)
def test_refusals(sink: httpx.Client, body: bytes, headers: dict[str, str], status: int) -> None:
    assert sink.post("/api/1/envelope/", content=body, headers=headers).status_code == status
    assert sink.get("/_sandbox/items").json()["items"] == []


def test_health(sink: httpx.Client) -> None:
    assert sink.get("/_sandbox/health").json() == {"status": "ok"}


def test_parse_envelope_without_lengths() -> None:
    header, items = parse_envelope(b'{"dsn":"x"}\n{"type":"session"}\n{"sid":"1"}\n')
    assert header == {"dsn": "x"}
    assert items == [({"type": "session"}, b'{"sid":"1"}')]
