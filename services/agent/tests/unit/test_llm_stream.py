"""Assembling a streamed chat completion: text pieces reach the listener in order, tool calls
split across chunks (as OpenAI sends their arguments) are joined by index, usage is read from
the last chunk, and a stream without any choice is a model failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from trackai_agent.adapters.llm import _streamed
from trackai_agent.domain.model import LlmFailure, ToolCall


def _chunk(
    delta: dict[str, Any] | None, usage: dict[str, int] | None = None
) -> ChatCompletionChunk:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": choices,
            "usage": usage,
        }
    )


class _Stream:
    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        async def each() -> AsyncIterator[ChatCompletionChunk]:
            for chunk in self._chunks:
                yield chunk

        return each()


async def test_text_and_split_tool_calls_are_assembled() -> None:
    pieces: list[str] = []

    async def heard(text: str) -> None:
        pieces.append(text)

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **fields}]}

    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Vou verificar "}),
        _chunk({"content": "o token."}),
        _chunk(
            call(
                0,
                id="call_a",
                type="function",
                function={"name": "validate_meta_token", "arguments": ""},
            )
        ),
        _chunk(
            call(
                1,
                id="call_b",
                type="function",
                function={"name": "probe_landing_url", "arguments": '{"url": '},
            )
        ),
        _chunk(call(0, function={"arguments": "{}"})),
        _chunk(call(1, function={"arguments": '"https://loja.example.com"}'})),
        _chunk(None, usage={"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}),
    ]
    reply = await _streamed(_Stream(chunks), heard)  # type: ignore[arg-type]
    assert pieces == ["Vou verificar ", "o token."]
    assert reply.content == "Vou verificar o token."
    assert reply.tool_calls == (
        ToolCall("call_a", "validate_meta_token", {}),
        ToolCall("call_b", "probe_landing_url", {"url": "https://loja.example.com"}),
    )
    assert (reply.prompt_tokens, reply.completion_tokens) == (120, 30)


async def test_a_stream_without_choices_is_a_failure() -> None:
    async def heard(text: str) -> None:
        raise AssertionError(text)

    with pytest.raises(LlmFailure):
        await _streamed(_Stream([_chunk(None)]), heard)  # type: ignore[arg-type]
