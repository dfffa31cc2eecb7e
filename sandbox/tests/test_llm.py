"""The LLM fake through the official ``openai`` SDK: scripted tool calls and text, streamed
answers with usage, scripted errors, a wrong key, and the unscripted default."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from trackai_sandbox.llm import DEMO_KEY, build_app
from trackai_sandbox.server import BackgroundServer
from trackai_sandbox.settings import SandboxSettings

TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
    for n in ("validate_meta_token", "probe_landing_url")
]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with BackgroundServer(build_app(SandboxSettings())) as running:
        yield running.base_url


@pytest.fixture
def fake(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as http:
        http.post("/_sandbox/reset").raise_for_status()
        yield http


def client(server: str, key: str = DEMO_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=5)


def test_scripted_tool_call_then_text(server: str, fake: httpx.Client) -> None:
    fake.post(
        "/_sandbox/script",
        json={
            "steps": [
                {"tool_calls": [{"name": "probe_landing_url", "arguments": {"x": 1}}]},
                {"content": "Página ok."},
            ]
        },
    )
    llm = client(server)
    first = llm.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "oi"}], tools=TOOLS
    )
    [call] = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (  # type: ignore[union-attr]
        "probe_landing_url",
        {"x": 1},
    )
    second = llm.chat.completions.create(model="m", messages=[{"role": "user", "content": "e?"}])
    assert second.choices[0].message.content == "Página ok."
    assert second.usage is not None and second.usage.prompt_tokens > 0
    assert fake.get("/_sandbox/requests").json()["total"] == 2


def test_streamed_text_with_usage(server: str, fake: httpx.Client) -> None:
    text = "Seu token expira em 02/12; gere um novo em Usuários do sistema."
    fake.post("/_sandbox/script", json={"steps": [{"content": text}]})
    stream = client(server).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "oi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == text
    assert len([p for p in pieces if p]) > 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_scripted_error_and_wrong_key(server: str, fake: httpx.Client) -> None:
    fake.post("/_sandbox/script", json={"steps": [{"error": {"status": 429, "message": "slow"}}]})
    with pytest.raises(openai.RateLimitError):
        client(server).chat.completions.create(model="m", messages=[])
    with pytest.raises(openai.AuthenticationError):
        client(server, key="wrong").chat.completions.create(model="m", messages=[])


def test_scripted_hang_times_the_client_out(server: str, fake: httpx.Client) -> None:
    fake.post("/_sandbox/script", json={"steps": [{"hang_s": 3}]})
    llm = openai.OpenAI(base_url=f"{server}/v1", api_key=DEMO_KEY, max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        llm.chat.completions.create(model="m", messages=[])


def test_unscripted_calls_the_last_tool_then_repeats_its_result(
    server: str, fake: httpx.Client
) -> None:
    llm = client(server)
    first = llm.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "oi"}], tools=TOOLS
    )
    [call] = first.choices[0].message.tool_calls or []
    assert call.function.name == "probe_landing_url"  # type: ignore[union-attr]
    answer = llm.chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "oi"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"message": "A página abre."}'},
        ],
    )
    assert answer.choices[0].message.content == "A página abre."
