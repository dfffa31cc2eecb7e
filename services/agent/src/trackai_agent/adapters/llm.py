"""The language model through the official ``openai`` SDK, against any OpenAI-compatible
chat-completions endpoint (the base URL, model and key are settings; the sandbox fake locally)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai

from trackai_agent.domain.model import LlmFailure, LlmReply, ToolCall


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
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> LlmReply:
        extra: dict[str, Any] = {"tools": list(tools)} if tools else {}
        try:
            answer = await self._client.chat.completions.create(
                model=self._model,
                messages=list(messages),  # type: ignore[arg-type]
                **extra,
            )
        except openai.APITimeoutError:
            raise LlmFailure("o modelo não respondeu a tempo") from None
        except openai.APIStatusError as exc:
            raise LlmFailure(f"o modelo respondeu HTTP {exc.status_code}") from None
        except openai.APIError as exc:
            raise LlmFailure(f"falha ao falar com o modelo ({type(exc).__name__})") from None
        if not answer.choices:
            raise LlmFailure("o modelo respondeu sem nenhuma mensagem")
        message = answer.choices[0].message
        calls = []
        for call in message.tool_calls or ():
            function = getattr(call, "function", None)
            if function is None:
                continue
            try:
                arguments = json.loads(function.arguments or "{}")
            except json.JSONDecodeError:
                arguments = {}
            calls.append(
                ToolCall(call.id, function.name, arguments if isinstance(arguments, dict) else {})
            )
        usage = answer.usage
        return LlmReply(
            message.content or "",
            tuple(calls),
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )
