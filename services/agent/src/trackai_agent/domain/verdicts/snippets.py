"""The ``send_test_capi_event`` and ``generate_tracking_snippet`` verdicts."""

from __future__ import annotations

from collections.abc import Sequence

from trackai_agent.domain.model import (
    Snippet,
    TestEventSent,
    ToolResult,
)


# --- send_test_capi_event / generate_tracking_snippet -------------------------------------------
def test_event_verdict(sent: TestEventSent) -> ToolResult:
    return ToolResult(
        "ok",
        f"Evento de teste Purchase enviado pela Conversions API com o código "
        f"{sent.test_event_code}: o Meta recebeu {sent.events_received} evento(s) "
        f"(event_id {sent.event_id}).",
        f"Abra o Gerenciador de Eventos → seu pixel → Eventos de teste, filtre pelo código "
        f"{sent.test_event_code} e confira o Purchase; a publicação já está liberada para "
        "aprovação em Track AI → Configuração → Revisão.",
        {
            "reason": "sent",
            "run_id": sent.run_id,
            "event_id": sent.event_id,
            "events_received": sent.events_received,
            "fbtrace_id": sent.fbtrace_id,
            "test_event_code": sent.test_event_code,
        },
    )


def snippets_verdict(snippets: Sequence[Snippet], platform: str) -> ToolResult:
    chosen = [s for s in snippets if not platform or s.platform == platform]
    if not chosen:
        known = ", ".join(s.platform for s in snippets)
        return ToolResult(
            "error",
            f'Não há código para a plataforma "{platform}" (há: {known}).',
            f"Escolha uma destas plataformas: {known}.",
            {"reason": "unknown_platform", "platforms": [s.platform for s in snippets]},
        )
    return ToolResult(
        "ok",
        "Código de rastreamento pronto: "
        + "; ".join(f"{s.title} → cole em {s.where}" for s in chosen)
        + ".",
        "Copie cada bloco no lugar indicado, publique a página e peça para eu verificar o pixel.",
        {
            "reason": "ok",
            "snippets": [
                {"platform": s.platform, "title": s.title, "where": s.where, "content": s.content}
                for s in chosen
            ],
        },
    )
