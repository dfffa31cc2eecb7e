"""A session's transcript as the conversation builds and reads it: the entries of tool results
and model replies, the chat messages the model is given (tool results stay ``tool`` messages:
data, never instructions), results rendered for the seller, and the escalation's Slack message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from trackai_agent.domain.model import (
    Entry,
    Escalation,
    LlmReply,
    ToolCall,
    ToolResult,
)
from trackai_agent.service_layer.tools import TOOL_SPECS

#: The mark each tool status gets when a result is shown to the seller.
ICONS = {"ok": "✅", "warning": "⚠️", "error": "❌"}


def render_result(result: ToolResult) -> str:
    return f"{ICONS[result.status]} {result.message}\n→ {result.action}"


def slack_message(escalation: Escalation) -> bytes:
    """Slack-compatible incoming-webhook JSON (``text`` plus blocks) for the support channel."""
    s = escalation.summary
    failures = "\n".join(
        f"{i}. {f.get('tool') or 'modelo de linguagem'}: {f.get('message')}"
        for i, f in enumerate(s.get("failures", []), start=1)
    )
    text = (
        f"Escalonamento do assistente: tenant {escalation.tenant_id}, etapa {escalation.step} "
        f"({escalation.reason})"
    )
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Falhas*\n{failures}"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Tentado:* {', '.join(s.get('tried', [])) or '-'}\n"
                f"*Sugestão:* {s.get('suggested_fix')}\n"
                f"*Transcrição:* <{escalation.transcript_url}>",
            },
        },
    ]
    return json.dumps({"text": text, "blocks": blocks, "summary": s}, ensure_ascii=False).encode()


def recent_failures(entries: Sequence[Entry], count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for entry in reversed(entries):
        if entry.role == "tool" and entry.outcome == "error":
            result = entry.tool_result or {}
            if (result.get("details") or {}).get("reason") == "not_allowed":
                continue
            found.append(
                {
                    "kind": "tool",
                    "tool": entry.tool_name,
                    "message": result.get("message", ""),
                    "action": result.get("action", ""),
                }
            )
        elif entry.role == "assistant" and entry.outcome == "error":
            found.append({"kind": "llm", "tool": None, "message": entry.content, "action": ""})
        if len(found) == count:
            break
    return list(reversed(found))


def rendered_results(entries: Sequence[Entry]) -> str:
    results = [
        ToolResult(**e.tool_result)
        for e in entries
        if e.role == "tool" and e.tool_result and e.tool_result.get("status") in ICONS
    ]
    return "\n\n".join(render_result(r) for r in results) or "Pode repetir, por favor?"


def tool_entry(call: ToolCall, result: ToolResult, duration_ms: float) -> Entry:
    event_id = result.details.get("event_id") if call.name == "send_test_capi_event" else None
    return Entry(
        "tool",
        json.dumps(result.as_dict(), ensure_ascii=False),
        call.name,
        call.id,
        call.arguments,
        result.as_dict(),
        result.status,
        duration_ms,
        event_id=str(event_id) if event_id else None,
    )


def tool_spec(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, **TOOL_SPECS[name]}}


def assistant_entry(reply: LlmReply, calls: Sequence[ToolCall], elapsed_ms: float) -> Entry:
    return Entry(
        "assistant",
        reply.content,
        tool_arguments={"tool_calls": [_call_json(c) for c in calls]} if calls else None,
        duration_ms=elapsed_ms,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
    )


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def assistant_message(content: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content or None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in calls
        ],
    }


def as_messages(history: Sequence[Entry]) -> list[dict[str, Any]]:
    """The stored transcript as chat messages: tool results stay ``tool`` messages (data)."""
    messages: list[dict[str, Any]] = []
    for entry in history:
        if entry.role == "user":
            messages.append({"role": "user", "content": entry.content})
        elif entry.role in ("assistant", "operator"):
            calls = (entry.tool_arguments or {}).get("tool_calls") or []
            if calls:
                messages.append(
                    assistant_message(
                        entry.content,
                        [ToolCall(c["id"], c["name"], c.get("arguments") or {}) for c in calls],
                    )
                )
            elif entry.content:
                messages.append({"role": "assistant", "content": entry.content})
        elif (
            entry.role == "tool"
            and entry.tool_call_id
            and not entry.tool_call_id.startswith("guided-")
        ):
            messages.append(
                {"role": "tool", "tool_call_id": entry.tool_call_id, "content": entry.content}
            )
        elif entry.role == "tool":
            # A guided-flow result has no model call to answer: give it as context, as data.
            messages.append(
                {
                    "role": "assistant",
                    "content": f"[resultado de {entry.tool_name}] {entry.content}",
                }
            )
    return messages
