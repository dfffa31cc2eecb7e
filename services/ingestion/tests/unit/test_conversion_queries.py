"""The read API's use cases over a recording reader: arguments are validated before any read,
page tokens are bound to their tenant, and a batch read asks once for the well-formed ids. No
database (the SQL is exercised by the integration tests)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from trackai_ingestion.domain.model import (
    CanonicalStatus,
    Conversion,
    HashedUserData,
    PaymentMethod,
    Tracking,
)
from trackai_ingestion.service_layer.conversions import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ConversionQueries,
    InvalidQuery,
)
from trackai_ingestion.service_layer.ports import StoredConversion

TENANT = uuid.uuid4()
T = datetime(2026, 12, 1, 12, tzinfo=UTC)


def stored(n: int) -> StoredConversion:
    conversion = Conversion(
        gateway="kiwify", order_id=f"o{n}", status=CanonicalStatus.APPROVED,
        gateway_status="paid", event_time=T - timedelta(minutes=n), amount=Decimal("97"),
        currency="BRL", product_id=None, product_name=None, payment_method=PaymentMethod.PIX,
        tracking=Tracking(), client_ip=None, user_agent=None, user_data=HashedUserData(),
    )  # fmt: skip
    return StoredConversion(uuid.UUID(int=n), TENANT, T, conversion)


@dataclass
class Reader:
    rows: list[StoredConversion] = field(default_factory=list)
    asked: list[dict[str, Any]] = field(default_factory=list)

    async def get(self, tenant_id: uuid.UUID, conversion_id: uuid.UUID) -> None:
        self.asked.append({"get": conversion_id})

    async def get_many(
        self, tenant_id: uuid.UUID, conversion_ids: Sequence[uuid.UUID]
    ) -> list[StoredConversion]:
        self.asked.append({"get_many": list(conversion_ids)})
        return [r for r in self.rows if r.id in conversion_ids]

    async def list(self, tenant_id: uuid.UUID, **where: Any) -> list[StoredConversion]:
        self.asked.append(where)
        after = where["after"]
        rows = [r for r in self.rows if after is None or r.conversion.event_time < after[0]]
        return rows[: where["limit"]]


async def test_a_batch_reads_the_well_formed_ids_once_each() -> None:
    reader = Reader([stored(1), stored(2)])
    queries = ConversionQueries(reader)
    one, two = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
    found = await queries.get_many(str(TENANT), [one, "not-a-uuid", two, one])
    assert [r.id for r in found] == [uuid.UUID(int=1), uuid.UUID(int=2)]
    assert reader.asked == [{"get_many": [uuid.UUID(int=1), uuid.UUID(int=2)]}]
    assert await queries.get_many(str(TENANT), ["nope"]) == [] and len(reader.asked) == 1


@pytest.mark.parametrize(
    ("tenant", "count"), [("acme", 1), (str(TENANT), MAX_PAGE_SIZE + 1)], ids=["tenant", "size"]
)
async def test_a_batch_is_refused_before_any_read(tenant: str, count: int) -> None:
    reader = Reader()
    with pytest.raises(InvalidQuery):
        await ConversionQueries(reader).get_many(tenant, [str(uuid.uuid4())] * count)
    assert reader.asked == []


async def test_pages_follow_their_token_and_a_token_stays_with_its_tenant() -> None:
    reader = Reader([stored(n) for n in range(5)])
    queries = ConversionQueries(reader)
    first = await queries.list(str(TENANT), page_size=2)
    assert [c.conversion.order_id for c in first.conversions] == ["o0", "o1"]
    assert reader.asked[0]["limit"] == 3  # one more than the page says whether another follows
    second = await queries.list(str(TENANT), page_size=2, page_token=first.next_page_token)
    assert [c.conversion.order_id for c in second.conversions] == ["o2", "o3"]
    last = await queries.list(str(TENANT), page_size=2, page_token=second.next_page_token)
    assert [c.conversion.order_id for c in last.conversions] == ["o4"] and not last.next_page_token
    with pytest.raises(InvalidQuery, match="another tenant"):
        await queries.list(str(uuid.uuid4()), page_token=first.next_page_token)


@pytest.mark.parametrize(
    "bad",
    [
        {"funnel_id": "funil"},
        {"page_size": -1},
        {"page_token": "garbage"},
        {"start": T, "end": T},
    ],
    ids=["funnel", "size", "token", "range"],
)
async def test_unusable_arguments_are_refused_before_any_read(bad: dict[str, Any]) -> None:
    reader = Reader()
    with pytest.raises(InvalidQuery):
        await ConversionQueries(reader).list(str(TENANT), **bad)
    assert reader.asked == []


async def test_the_page_size_is_capped_and_defaulted() -> None:
    reader = Reader([stored(1)])
    queries = ConversionQueries(reader)
    await queries.list(str(TENANT), page_size=10_000)
    await queries.list(str(TENANT))
    assert [a["limit"] for a in reader.asked] == [MAX_PAGE_SIZE + 1, DEFAULT_PAGE_SIZE + 1]
