"""The LLM fake: ``POST /v1/chat/completions`` in OpenAI's wire format (JSON or server-sent
events), answering from a queue of scripted steps, plus ``/_sandbox`` control routes.

A step is one answer: ``{"content": "..."}``, ``{"tool_calls": [{"name": ..., "arguments":
{...}}]}`` (any name: a real model can ask for a tool it was not offered),
``{"error": {"status": 429, "message": "..."}}`` or ``{"hang_s": 30}`` (no answer; the client's
timeout fires). With the queue empty, the fake calls the last tool offered when the last message
is the user's, and otherwise answers with the ``message`` of the last tool result.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

#: Published demo key of the fake (nothing real).
DEMO_KEY = "sandbox-llm-key"
_CHUNK_WORDS = 3


class StepIn(BaseModel):
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    hang_s: float | None = Field(None, gt=0)


class ScriptIn(BaseModel):
    steps: list[StepIn]


@dataclass
class LlmState:
    key: str = DEMO_KEY
    script: deque[StepIn] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}},
        status_code=status,
    )


def _tokens(text: str) -> int:
    # Roughly what OpenAI's tokenizers give for Portuguese prose: a token per ~4 characters.
    return max(1, len(text) // 4)


def _default_step(body: dict[str, Any]) -> StepIn:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    tools = body.get("tools") or []
    if last.get("role") == "user" and tools:
        name = tools[-1]["function"]["name"]
        return StepIn(tool_calls=[{"name": name, "arguments": {}}])
    if last.get("role") == "tool":
        try:
            message = json.loads(last.get("content") or "{}").get("message", "")
        except (ValueError, AttributeError):
            message = ""
        return StepIn(content=message or "Pronto.")
    return StepIn(content="Como posso ajudar na configuração?")


def _message(step: StepIn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.content, "refusal": None}
    if step.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": json.dumps(call.get("arguments") or {}),
                },
            }
            for call in step.tool_calls
        ]
    return message


def create_app(state: LlmState) -> FastAPI:
    app = FastAPI(title="Track AI sandbox: LLM")

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {state.key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error")
        body = await request.json()
        state.requests.append(body)
        step = state.script.popleft() if state.script else _default_step(body)
        if step.hang_s:
            await asyncio.sleep(step.hang_s)
        if step.error:
            status = int(step.error.get("status", 500))
            kind = "rate_limit_error" if status == 429 else "server_error"
            return _error(status, str(step.error.get("message", "The server had an error")), kind)
        message = _message(step)
        prompt = sum(_tokens(str(m.get("content") or "")) for m in body.get("messages") or [])
        completion = _tokens(json.dumps(message))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        finish = "tool_calls" if step.tool_calls else "stop"
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        model = str(body.get("model") or "sandbox")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _stream(completion_id, model, message, finish, usage if include_usage else None),
                media_type="text/event-stream",
            )
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": usage,
            }
        )

    @app.get("/_sandbox/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    @app.post("/_sandbox/script")
    async def script(body: ScriptIn) -> dict[str, int]:
        state.script.extend(body.steps)
        return {"queued": len(state.script)}

    @app.get("/_sandbox/requests")
    async def requests() -> dict[str, Any]:
        return {"total": len(state.requests), "data": state.requests}

    return app


async def _stream(
    completion_id: str,
    model: str,
    message: dict[str, Any],
    finish: str,
    usage: dict[str, int] | None,
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    words = (message.get("content") or "").split(" ")
    for start in range(0, len(words) if message.get("content") else 0, _CHUNK_WORDS):
        text = " ".join(words[start : start + _CHUNK_WORDS])
        yield chunk({"content": text if start == 0 else " " + text})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, finish)
    if usage is not None:
        yield (
            "data: "
            + json.dumps(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
            + "\n\n"
        )
    yield "data: [DONE]\n\n"
