"""The collect use case with an in-memory hit writer and directory: what reaches the store, and
what a duplicate or an invalid hit answers. No database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pytest

from trackai_ingestion.domain.collect import BrowserHit, CollectTenant, InvalidHit
from trackai_ingestion.service_layer.collect import RecordBrowserHit
from trackai_ingestion.service_layer.ports import RegistryUnavailable

from .test_collect_rules import RECEIVED, TENANT, _payload


@dataclass
class Hits:
    stored: list[tuple[BrowserHit, datetime]] = field(default_factory=list)
    #: (kind, event_id) already stored: the writer answers None for them, as the table does.
    seen: set[tuple[str, str]] = field(default_factory=set)

    async def record(self, hit: BrowserHit, received_at: datetime) -> str | None:
        if (hit.kind, hit.event_id) in self.seen:
            return None
        self.seen.add((hit.kind, hit.event_id))
        self.stored.append((hit, received_at))
        return f"row-{len(self.stored)}"


@dataclass
class Directory:
    down: bool = False

    async def get(self, tenant_ref: str) -> CollectTenant | None:
        if self.down:
            raise RegistryUnavailable("UNAVAILABLE and nothing cached")
        return TENANT if tenant_ref in (TENANT.tenant_id, "loja") else None


def use_case(hits: Hits, directory: Directory | None = None) -> RecordBrowserHit:
    return RecordBrowserHit(hits, directory or Directory(), clock=lambda: RECEIVED)


async def test_a_hit_is_stored_once_with_the_service_clock() -> None:
    hits = Hits()
    record = use_case(hits)
    first = await record(TENANT, _payload(), client_ip="203.0.113.9", user_agent="UA")
    again = await record(TENANT, _payload(), client_ip="203.0.113.9", user_agent="UA")
    assert first.stored and first.event_row_id == "row-1"
    assert not again.stored and again.event_row_id is None
    ((hit, received_at),) = hits.stored
    assert received_at == RECEIVED and hit.tenant_id == TENANT.tenant_id


async def test_an_invalid_hit_never_reaches_the_store() -> None:
    hits = Hits()
    with pytest.raises(InvalidHit):
        await use_case(hits)(TENANT, _payload(type="purchase"), client_ip=None, user_agent=None)
    assert hits.stored == []


async def test_the_tenant_lookup_passes_the_registry_answer_through() -> None:
    assert await use_case(Hits()).tenant("loja") == TENANT
    assert await use_case(Hits()).tenant("nobody") is None
    with pytest.raises(RegistryUnavailable):
        await use_case(Hits(), Directory(down=True)).tenant("loja")
