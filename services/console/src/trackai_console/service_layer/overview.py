"""The overview page's use case: today and the last 7 days in numbers, and the banners of what
needs the seller's action (each with its concrete fix)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trackai_console.domain.ports import SourceUnavailable
from trackai_console.domain.quality import EMQ_THRESHOLD, QualityReport
from trackai_console.service_layer.dead_letters import DeadLetters
from trackai_console.service_layer.quality import Quality


@dataclass(frozen=True)
class Banner:
    message: str
    fix: str
    link: str


@dataclass(frozen=True)
class Overview:
    report: QualityReport
    dead_letters: int
    banners: list[Banner] = field(default_factory=list)
    #: A service did not answer: the numbers are missing, the page still opens.
    unavailable: bool = False

    @property
    def today(self) -> int:
        return self.report.days[-1].conversions if self.report.days else 0


class BuildOverview:
    def __init__(self, quality: Quality, dead_letters: DeadLetters) -> None:
        self._quality = quality
        self._dead = dead_letters

    async def __call__(self, tenant_id: str) -> Overview:
        try:
            report = await self._quality.last_days(tenant_id)
            dead = await self._dead.page(tenant_id, reason="", period="tudo")
        except SourceUnavailable:
            return Overview(QualityReport([]), 0, unavailable=True)
        banners: list[Banner] = []
        if dead.dead_letters:
            count = f"{len(dead.dead_letters)}{'+' if dead.next_token else ''}"
            banners.append(
                Banner(
                    f"{count} evento(s) na fila de falhas: a Meta ainda não os recebeu.",
                    "Veja o motivo de cada um, corrija e reenvie (até 7 dias após a venda).",
                    "/dlq",
                )
            )
        average = report.average
        if average is not None and average < EMQ_THRESHOLD:
            banners.append(
                Banner(
                    f"A qualidade da correspondência (EMQ) está em {average:.1f}".replace(".", ",")
                    + f", abaixo de {EMQ_THRESHOLD:.1f}".replace(".", ",")
                    + ".",
                    "Envie mais dados do comprador e instale o script em todas as páginas.",
                    "/emq",
                )
            )
        return Overview(report, len(dead.dead_letters), banners)
