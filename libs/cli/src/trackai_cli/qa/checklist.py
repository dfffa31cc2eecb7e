"""The 15 items of the QA checklist ("do formulário até o Events Manager"), as docs/qa-checklist.md
lists them: number, text, severity, the path the check drives, and what it needs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    #: A failure blocks the release (`trackai qa` exits non-zero).
    CRITICAL = "critical"
    #: A failure is reported (with its bug report) but does not block the release.
    MAJOR = "major"


@dataclass(frozen=True)
class Item:
    number: int
    title: str
    severity: Severity
    #: Items whose outcome this one builds on (a failed prerequisite blocks it).
    needs: tuple[int, ...] = ()
    #: Writes outside the release's own database (Cloudflare, Stape, GTM, a publish, sales at
    #: Meta) or injects a fault: left out of the non-destructive subset (`helm test`).
    destructive: bool = True
    #: Needs the sandbox fakes' inspection APIs (a fault, a record of what Meta received).
    sandbox_only: bool = False


ITEMS: tuple[Item, ...] = (
    Item(1, "tenant and credentials created", Severity.CRITICAL, destructive=False),
    Item(2, "CNAME created with proxied=false", Severity.CRITICAL, (1,)),
    Item(3, "Stape container running within 10 minutes", Severity.CRITICAL, (1,)),
    Item(
        4,
        "GTM web and server containers created, versions unpublished pending review",
        Severity.CRITICAL,
        (1,),
    ),
    Item(5, "snippet generated per platform and loading in Chromium", Severity.CRITICAL, (1, 4)),
    Item(6, "landing page probed and the pixel found", Severity.MAJOR, (4,)),
    Item(7, "Meta token valid", Severity.CRITICAL, (1,), destructive=False),
    Item(8, "gateway webhook verified", Severity.CRITICAL, (1,), destructive=False),
    Item(
        9,
        "test event received → publish unlocked → approved by a named person → published",
        Severity.CRITICAL,
        (4, 8),
    ),
    Item(
        10,
        "click collected with fbclid → fbc as Meta builds it",
        Severity.CRITICAL,
        (1,),
        destructive=False,
    ),
    Item(11, "purchase matched to that session", Severity.CRITICAL, (10,)),
    Item(
        12,
        "the browser pixel and the server event share one event_id (deduplicated)",
        Severity.CRITICAL,
        (11,),
        sandbox_only=True,
    ),
    Item(
        13,
        "dispatched once, every attempt recorded, EMQ estimate ≥ 6",
        Severity.CRITICAL,
        (11,),
        sandbox_only=True,
    ),
    Item(
        14,
        "Meta 5xx → retry ladder → DLQ → replay → delivered once",
        Severity.CRITICAL,
        (1,),
        sandbox_only=True,
    ),
    Item(15, "alarms fire and Sentry receives the error", Severity.MAJOR, (14,), sandbox_only=True),
)

BY_NUMBER = {item.number: item for item in ITEMS}
