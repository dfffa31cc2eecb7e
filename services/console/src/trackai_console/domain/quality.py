"""Event Match Quality as the seller reads it: the 7-day series against Meta's 6.0 line, and
what to do to raise it (pt-BR). Pure logic, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

EMQ_THRESHOLD = 6.0

ADVICE = (
    "Envie o e-mail e o telefone do comprador em todas as vendas: são os dados que mais pesam "
    "na qualidade da correspondência.",
    "Instale o script do Track AI em todas as páginas do funil: ele guarda o fbc e o fbp do "
    "clique no anúncio e os envia junto com a venda.",
    "Passe o identificador de sessão para o checkout (parâmetro sck/src do link), para a venda "
    "ser ligada ao clique com certeza.",
    "Peça nome completo e cidade no checkout quando o gateway permitir.",
)


@dataclass(frozen=True)
class DayQuality:
    day: str  # ISO date (UTC day of the conversion)
    conversions: int
    emq_average: float
    below_threshold: int
    #: Conversions by match stage (kept in the console's history, ``emq_daily``).
    deterministic: int = 0
    semi: int = 0
    probabilistic: int = 0
    unmatched: int = 0

    @property
    def has_data(self) -> bool:
        return self.conversions > 0

    @property
    def ok(self) -> bool:
        return self.emq_average >= EMQ_THRESHOLD


@dataclass(frozen=True)
class QualityReport:
    days: list[DayQuality]
    #: Read from the console's own history because the matcher did not answer.
    from_history: bool = False

    @property
    def conversions(self) -> int:
        return sum(d.conversions for d in self.days)

    @property
    def average(self) -> float | None:
        """Weighted by conversions; None without any."""
        total = self.conversions
        if not total:
            return None
        return sum(d.emq_average * d.conversions for d in self.days) / total

    @property
    def below_threshold(self) -> int:
        return sum(d.below_threshold for d in self.days)

    @property
    def ok(self) -> bool:
        average = self.average
        return average is not None and average >= EMQ_THRESHOLD

    def chart(self) -> dict[str, object]:
        """What the Chart.js page script draws (days without sales are gaps)."""
        return {
            "labels": [f"{d.day[8:10]}/{d.day[5:7]}" for d in self.days],
            "values": [round(d.emq_average, 1) if d.has_data else None for d in self.days],
            "threshold": EMQ_THRESHOLD,
        }
