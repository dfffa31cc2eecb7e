"""The DLQ page's vocabulary: dead events with their reasons in Brazilian Portuguese, and the
outcome of a replay as the seller reads it. Pure logic, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

REASON_LABELS: Mapping[str, str] = {
    "invalid_event": "Evento inválido (faltam dados obrigatórios)",
    "meta_rejected": "A Meta recusou o evento",
    "meta_permanent": "Erro permanente da Meta (token, pixel ou permissão)",
    "retries_exhausted": "Tentativas esgotadas (a Meta não respondeu)",
    "event_too_old": "Mais de 7 dias: a Meta não aceita mais",
    "no_destination": "Sem pixel configurado para este funil",
}
#: Meta refuses server events whose event_time is older than this.
META_WINDOW_DAYS = 7


@dataclass(frozen=True)
class DeadLetter:
    event_id: str
    event_name: str
    reason: str
    detail: str
    meta_code: int
    attempts: int
    event_time: datetime
    dead_time: datetime
    replayable: bool

    @property
    def reason_label(self) -> str:
        return REASON_LABELS.get(self.reason, self.reason)


@dataclass
class ReplayOutcome:
    """What one replay request came to (summed over the events of a selection)."""

    selected: int = 0
    replayed: int = 0
    already_sent: int = 0
    too_old: int = 0
    refused: list[str] = field(default_factory=list)

    def add(self, other: ReplayOutcome) -> None:
        self.selected += other.selected
        self.replayed += other.replayed
        self.already_sent += other.already_sent
        self.too_old += other.too_old
        self.refused.extend(other.refused)

    @property
    def message(self) -> str:
        parts = [f"{self.replayed} reenviado(s) para a Meta"]
        if self.already_sent:
            parts.append(
                f"{self.already_sent} já tinham sido enviados (não serão enviados de novo)"
            )
        if self.too_old:
            parts.append(
                f"{self.too_old} recusado(s): mais de {META_WINDOW_DAYS} dias, a Meta não aceita "
                "eventos tão antigos"
            )
        if self.refused:
            parts.append(f"{len(self.refused)} não encontrado(s) na fila de falhas")
        return "; ".join(parts) + "."
