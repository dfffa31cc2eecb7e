"""How the conversation reads and writes its transcript: tool results reach the model only as
``tool`` messages (data), guided results as plain context, failures for the escalation skip the
tools the flow refused. Pure functions, no I/O."""

from __future__ import annotations

import json

from trackai_agent.domain.model import Entry, Escalation, LlmReply, ToolCall, ToolResult
from trackai_agent.service_layer.transcript import (
    as_messages,
    assistant_entry,
    recent_failures,
    render_result,
    rendered_results,
    slack_message,
    tool_entry,
)

CALL = ToolCall("call-1", "validate_meta_token", {"pixel_id": "123"})
OK = ToolResult("ok", "Token válido.", "Siga para o webhook.", {"reason": "ok"})
BAD = ToolResult("error", "Token expirado.", "Gere um novo token.", {"reason": "expired"})


def test_a_model_call_and_its_result_round_trip_as_chat_messages() -> None:
    history = [
        Entry("user", "verifique meu token"),
        assistant_entry(LlmReply("", (CALL,), 10, 5), [CALL], 12.0),
        tool_entry(CALL, OK, 40.0),
    ]
    messages = as_messages(history)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    (call,) = messages[1]["tool_calls"]
    assert call["id"] == "call-1"
    assert json.loads(call["function"]["arguments"]) == {"pixel_id": "123"}
    assert messages[1]["content"] is None
    assert messages[2]["tool_call_id"] == "call-1"
    assert json.loads(messages[2]["content"])["message"] == "Token válido."


def test_a_guided_result_is_context_never_a_tool_message() -> None:
    guided = tool_entry(ToolCall("guided-1", "validate_meta_token", {}), BAD, 0.0)
    (message,) = as_messages([guided])
    assert message["role"] == "assistant"
    assert message["content"].startswith("[resultado de validate_meta_token] ")


def test_recent_failures_skip_refused_tools_and_keep_order() -> None:
    refused = ToolResult("error", "Agora não.", "", {"reason": "not_allowed"})
    entries = [
        tool_entry(CALL, BAD, 1.0),
        Entry("assistant", "modelo falhou", outcome="error"),
        tool_entry(CALL, refused, 1.0),
        tool_entry(CALL, OK, 1.0),
    ]
    assert recent_failures(entries, 3) == [
        {"kind": "tool", "tool": CALL.name, "message": BAD.message, "action": BAD.action},
        {"kind": "llm", "tool": None, "message": "modelo falhou", "action": ""},
    ]
    assert [f["kind"] for f in recent_failures(entries, 1)] == ["llm"]


def test_results_render_for_the_seller_with_a_fallback() -> None:
    entries = [tool_entry(CALL, OK, 1.0), tool_entry(CALL, BAD, 1.0)]
    assert rendered_results(entries) == (
        "✅ Token válido.\n→ Siga para o webhook.\n\n❌ Token expirado.\n→ Gere um novo token."
    )
    assert render_result(OK) == "✅ Token válido.\n→ Siga para o webhook."
    assert rendered_results([Entry("user", "oi")]) == "Pode repetir, por favor?"


def test_a_test_event_entry_keeps_its_event_id() -> None:
    call = ToolCall("c", "send_test_capi_event", {})
    sent = ToolResult("ok", "Enviado.", "Confira.", {"event_id": "ev-1"})
    assert tool_entry(call, sent, 1.0).event_id == "ev-1"
    assert tool_entry(CALL, sent, 1.0).event_id is None


def test_the_slack_message_lists_failures_and_links_the_transcript() -> None:
    escalation = Escalation(
        "esc-1", "s1", "t1", "meta_token", "3 falhas", 3, "open",
        summary={"failures": [{"tool": None, "message": "sem resposta"}], "tried": ["a", "b"],
                 "suggested_fix": "trocar o token"},
        transcript_url="https://console/t",
    )  # fmt: skip
    body = json.loads(slack_message(escalation))
    assert body["text"] == "Escalonamento do assistente: tenant t1, etapa meta_token (3 falhas)"
    blocks = [b["text"]["text"] for b in body["blocks"]]
    assert blocks[1] == "*Falhas*\n1. modelo de linguagem: sem resposta"
    assert "*Tentado:* a, b" in blocks[2] and "<https://console/t>" in blocks[2]
