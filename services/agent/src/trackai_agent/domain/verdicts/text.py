"""Wording shared by the verdicts: Brasília dates and sentence case."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

#: Brazil has had no daylight saving time since 2019: Brasília time is UTC-3 all year.
BRT = timezone(timedelta(hours=-3))


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def day_month(moment: datetime) -> str:
    return moment.astimezone(BRT).strftime("%d/%m")


def full_date(moment: datetime) -> str:
    return moment.astimezone(BRT).strftime("%d/%m/%Y %H:%M")
