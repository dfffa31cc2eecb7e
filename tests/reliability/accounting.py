"""Jepsen-style accounting for the reliability scenarios: every webhook we acknowledged is either at
Meta exactly once (under the one event_id of its order and event) or visibly dead with its reason;
nothing is silently missing, nothing reaches Meta twice or under an id we never issued."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aio_pika
import aio_pika.exceptions
import asyncpg
from google.protobuf.message import DecodeError

from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_kit.identity import event_id
from trackai_kit.topology import CAPI_DISPATCH, dlq_name
from trackai_sandbox.testing import MetaSandboxClient
from trackai_testing.plugin import run_sync


@dataclass
class Account:
    """Where every acknowledged sale ended up."""

    delivered: set[str] = field(default_factory=set)
    dead: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    duplicated: dict[str, int] = field(default_factory=dict)
    #: Event ids at Meta that no acknowledged sale explains (a refused webhook, a second id).
    unexpected: set[str] = field(default_factory=set)

    @property
    def settled(self) -> bool:
        """Every sale is at Meta or dead (duplicates and strangers are judged by ``assert_clean``)."""
        return not self.missing

    def summary(self) -> str:
        return (
            f"delivered={len(self.delivered)} dead={len(self.dead)} missing={len(self.missing)} "
            f"duplicated={len(self.duplicated)} unexpected={len(self.unexpected)}"
        )


@dataclass
class Ledger:
    """The sales a scenario got a 200 for, by the event id Meta must see them under."""

    tenant_id: str
    pixel_id: str
    database_url: str
    gateway: str = "kiwify"
    #: The broker and the pipeline's queue prefix: events dead-lettered by RabbitMQ itself (a
    #: rejected poison message, a delivery limit reached) are dead too, visibly, in
    #: ``capi-dispatch.dlq`` (`trackai dlq list --queue capi-dispatch`).
    amqp_url: str | None = None
    amqp_prefix: str = ""
    #: event_id -> order id, for every acknowledged (accepted or duplicate) webhook.
    acknowledged: dict[str, str] = field(default_factory=dict)

    def ack(self, order_id: str, event_name: str = "Purchase") -> None:
        self.acknowledged[event_id(self.tenant_id, self.gateway, order_id, event_name)] = order_id

    def account(self, meta: MetaSandboxClient) -> Account:
        counts = {c["event_id"]: c["count"] for c in meta.event_counts(pixel_id=self.pixel_id)}
        dead = run_sync(_dead(self.database_url, self.tenant_id))
        if self.amqp_url is not None:
            dead.update(run_sync(dead_lettered(self.amqp_url, self.amqp_prefix + CAPI_DISPATCH)))
        account = Account(unexpected=set(counts) - set(self.acknowledged))
        for eid in self.acknowledged:
            seen = counts.get(eid, 0)
            if seen == 1:
                account.delivered.add(eid)
            elif seen > 1:
                account.duplicated[eid] = seen
            elif eid in dead:
                account.dead[eid] = dead[eid]
            else:
                account.missing.add(eid)
        return account

    def settle(
        self,
        meta: MetaSandboxClient,
        timeout_s: float = 120,
        until: Callable[[Account], bool] = (lambda a: a.settled),
    ) -> Account:
        """Wait until every acknowledged sale is at Meta or dead (or ``until`` holds)."""
        deadline = time.monotonic() + timeout_s
        while True:
            account = self.account(meta)
            if until(account):
                return account
            if time.monotonic() > deadline:
                raise AssertionError(f"not settled after {timeout_s:.0f} s: {account.summary()}")
            time.sleep(0.5)


def assert_clean(
    account: Account, *, dead_allowed: bool = False, resent: frozenset[str] = frozenset()
) -> None:
    """``resent``: events Meta had accepted when their sender died before hearing the answer;
    those (and only those) may be at Meta twice, under their one event_id (Meta deduplicates)."""
    assert account.missing == set(), f"silently missing: {sorted(account.missing)[:5]}"
    twice = {eid: n for eid, n in account.duplicated.items() if eid in resent and n == 2}
    extra = {eid: n for eid, n in account.duplicated.items() if eid not in twice}
    assert extra == {}, f"at Meta more than once: {extra}"
    assert account.unexpected == set(), f"at Meta under ids we never issued: {account.unexpected}"
    if not dead_allowed:
        assert account.dead == {}, f"dead: {account.dead}"


async def _dead(database_url: str, tenant_id: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT event_id, coalesce(reason, state) AS reason FROM dispatcher.dispatches"
            " WHERE tenant_id = $1 AND state IN ('dead', 'expired')",
            uuid.UUID(tenant_id),
        )
    finally:
        await conn.close()
    return {r["event_id"]: r["reason"] for r in rows}


async def dead_lettered(amqp_url: str, queue: str) -> dict[str, str]:
    """Event id -> ``dead-lettered: <reason>`` of every DispatchRequest in ``queue``'s DLQ, read
    without taking it (the messages go back when the channel closes; the DLQ's delivery limit
    is far beyond what reading costs)."""
    connection = await aio_pika.connect(amqp_url)
    found: dict[str, str] = {}
    try:
        channel = await connection.channel()
        try:
            dlq = await channel.declare_queue(dlq_name(queue), passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return found
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            request = matcher_pb.DispatchRequest()
            try:
                request.ParseFromString(message.body)
            except DecodeError:
                continue  # poison: no sale to account for
            deaths = (message.headers or {}).get("x-death")
            reason = deaths[0].get("reason", "?") if isinstance(deaths, list) and deaths else "?"
            if isinstance(reason, bytes):
                reason = reason.decode()
            found[request.event.event_id] = f"dead-lettered: {reason}"
        await channel.close()
    finally:
        await connection.close()
    return found
