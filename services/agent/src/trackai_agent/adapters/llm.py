"""The language model through the official ``openai`` SDK, against any OpenAI-compatible
chat-completions endpoint (the base URL, model and key are settings; the sandbox fake locally).
With a delta listener the answer is streamed and its text handed over piece by piece."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from trackai_agent.domain.model import LlmFailure, LlmReply, ToolCall

DeltaListener = Callable[[str], Awaitable[None]]


class OpenAiChat:
    def __init__(self, base_url: str, api_key: str, model: str, timeout_s: float) -> None:
        # No SDK retries: a failed call is one of the session's consecutive failures, and the
        # seller is waiting for the answer.
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0
        )
        self._model = model

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        on_delta: DeltaListener | None = None,
    ) -> LlmReply:
        extra: dict[str, Any] = {"tools": list(tools)} if tools else {}
        try:
            if on_delta is None:
                answer = await self._client.chat.completions.create(
                    model=self._model,
                    messages=list(messages),  # type: ignore[arg-type]
                    **extra,
                )
                return _reply(answer)
            stream = await self._client.chat.completions.create(  # type: ignore[call-overload]
                model=self._model,
                messages=list(messages),
                stream=True,
                stream_options={"include_usage": True},
                **extra,
            )
            return await _streamed(stream, on_delta)
        except openai.APITimeoutError:
            raise LlmFailure("o modelo não respondeu a tempo") from None
        except openai.APIStatusError as exc:
            raise LlmFailure(f"o modelo respondeu HTTP {exc.status_code}") from None
        except openai.APIError as exc:
            raise LlmFailure(f"falha ao falar com o modelo ({type(exc).__name__})") from None


def _call(call_id: str, name: str, raw_arguments: str) -> ToolCall:
    try:
        arguments = json.loads(raw_arguments or "{}")
    except json.JSONDecodeError:
        arguments = {}
    return ToolCall(call_id, name, arguments if isinstance(arguments, dict) else {})


def _reply(answer: ChatCompletion) -> LlmReply:
    if not answer.choices:
        raise LlmFailure("o modelo respondeu sem nenhuma mensagem")
    message = answer.choices[0].message
    calls = []
    for call in message.tool_calls or ():
        function = getattr(call, "function", None)
        if function is not None:
            calls.append(_call(call.id, function.name, function.arguments))
    usage = answer.usage
    return LlmReply(
        message.content or "",
        tuple(calls),
        usage.prompt_tokens if usage else 0,
        usage.completion_tokens if usage else 0,
    )


async def _streamed(
    stream: openai.AsyncStream[ChatCompletionChunk], on_delta: DeltaListener
) -> LlmReply:
    """Assemble a streamed answer: text pieces go to ``on_delta`` as they come; tool calls
    arrive in fragments keyed by index."""
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    prompt_tokens = completion_tokens = 0
    chose = False
    async for chunk in stream:
        if chunk.usage is not None:
            prompt_tokens = chunk.usage.prompt_tokens
            completion_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            chose = True
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
                await on_delta(delta.content)
            for fragment in delta.tool_calls or ():
                call = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = fragment.id or call["id"]
                if fragment.function is not None:
                    call["name"] += fragment.function.name or ""
                    call["arguments"] += fragment.function.arguments or ""
    if not chose:
        raise LlmFailure("o modelo respondeu sem nenhuma mensagem")
    return LlmReply(
        "".join(text),
        tuple(_call(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())),
        prompt_tokens,
        completion_tokens,
    )
