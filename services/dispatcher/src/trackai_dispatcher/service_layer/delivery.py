"""Delivering one destination's batch to Meta: claim the events, validate them, then, holding one
of the ``concurrency`` POST slots, ask the breaker and POST (splitting on a refused payload), then
commit every event's new state, every attempt and the breaker in one transaction, publishing
retry and park copies before that commit.

Copies and the stale rule: every message copy carries the number of POSTs recorded for its event
when the copy was made (``copy``). A copy is published before the transaction that raises
``attempts`` commits, so a crash leaves either the old message (redelivered, ``copy`` equal to the
stored count) or the new copy, never neither; a copy whose number is below the stored count is a
leftover and is dropped. A copy that finds its event claimed by a live batch waits in a delay
queue instead of reaching Meta alongside it.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from trackai_dispatcher.domain.breaker import BreakerPolicy, BreakerState, Gate, Transition
from trackai_dispatcher.domain.classification import MetaAnswer, Verdict, classify
from trackai_dispatcher.domain.model import Destination, RetryLadder
from trackai_dispatcher.service_layer.batch import Batch, Disposition, Outcome, detail, new_dispatch
from trackai_dispatcher.service_layer.metrics import (
    BATCH_SIZE,
    BREAKER,
    META_LATENCY,
    META_SLOW,
    META_SLOW_S,
    REQUESTS,
    TOKEN_ERRORS,
)
from trackai_dispatcher.service_layer.notices import Notices
from trackai_dispatcher.service_layer.ports import (
    AttemptRecord,
    Change,
    Credentials,
    CredentialUnusable,
    Delivery,
    DeliveryStore,
    DeliveryTransaction,
    DestinationResolver,
    MetaPoster,
    Notifier,
    Publisher,
    RegistryRefused,
)
from trackai_dispatcher.service_layer.settling import settle_event
from trackai_dispatcher.service_layer.sorting import Go, park, sort_out
from trackai_kit.logging import get_logger

log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        meta: MetaPoster,
        destinations: DestinationResolver,
        publisher: Publisher,
        notifier: Notifier,
        *,
        policy: BreakerPolicy,
        ladder: RetryLadder,
        claim_lease_s: float,
        concurrency: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._meta = meta
        self._destinations = destinations
        self._publisher = publisher
        self._policy = policy
        self._ladder = ladder
        self._lease_s = claim_lease_s
        self._clock = clock
        # Only the POSTs are limited to ``concurrency``: batches store, claim and commit around
        # them, so each POST slot goes from one answer straight to the next prepared batch.
        self._posting = asyncio.Semaphore(concurrency)
        self._notices = Notices(notifier, clock)

    async def dispatch(
        self,
        destination: Destination,
        deliveries: Sequence[Delivery],
        stopping: Callable[[], bool] = lambda: False,
    ) -> list[Disposition]:
        """Deliver one destination's messages; answers a :class:`Disposition` per message."""
        batch = Batch(uuid.uuid4(), destination)
        chosen: dict[str, Delivery] = {}
        for delivery in deliveries:
            # Two copies of one event in a batch: the newer one speaks for both.
            known = chosen.get(delivery.event_id)
            if known is None or delivery.copy > known.copy:
                chosen[delivery.event_id] = delivery
            if known is not None:
                log.info("leftover copy dropped", event_id=delivery.event_id, why="same batch")
        credentials = await self._credentials(batch, chosen.values())
        go = await self._prepare(batch, list(chosen.values()), credentials)
        self._notices.notify(batch)
        if go:
            await self._posting.acquire()
            holding = True
            try:
                go, quiet = await self._admit(batch, go)
                if go:
                    await self._send_all(batch, go, credentials, stopping)
                    if quiet and not any(classify(a).breaker_failure for a in batch.verdicts):
                        # Nothing for the breaker to record: the next batch may post before
                        # this one commits. Otherwise it waits, and sees what this one counted.
                        self._posting.release()
                        holding = False
                    await self._finish(batch, go)
            finally:
                if holding:
                    self._posting.release()
            self._notices.notify(batch)
        return [
            Disposition.REQUEUE if d.event_id in batch.handed_back else Disposition.ACK
            for d in deliveries
        ]

    async def _credentials(
        self, batch: Batch, deliveries: Iterable[Delivery]
    ) -> dict[str, Credentials | None] | None:
        """Token and test code per funnel; None when the registry cannot answer right now.

        A definitive refusal (PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION...) is
        not retried: no funnel has credentials, so the events go dead (replayable once fixed).
        """
        destination = batch.destination
        funnels = {d.conversion.funnel_id for d in deliveries}
        found: dict[str, Credentials | None] = {}
        try:
            for funnel in funnels:
                try:
                    found[funnel] = await self._destinations.credentials(
                        destination.tenant_id, funnel, destination.pixel_id
                    )
                except CredentialUnusable as exc:
                    # The registry cannot open the credential this funnel's events need (it
                    # says which): those events are dead until it is set again; others go on.
                    found[funnel] = None
                    batch.unusable[funnel] = str(exc)
                    log.error(
                        "Meta credential cannot be used; the events that need it are dead",
                        destination=str(destination),
                        funnel_id=funnel,
                        error=batch.unusable[funnel],
                    )
        except RegistryRefused as exc:
            refusal = f"the tenant registry refused the dispatcher ({exc})"
            log.error(
                "tenant registry refused the dispatcher; the batch's events are dead",
                destination=str(destination),
                error=refusal,
            )
            batch.unusable = dict.fromkeys(funnels, refusal)
            return dict.fromkeys(funnels)
        except Exception as exc:
            self._registry_unavailable(destination, exc)
            return None
        return found

    def _registry_unavailable(self, destination: Destination, exc: Exception) -> None:
        log.warning(
            "tenant registry unavailable; deferring the batch",
            destination=str(destination),
            error=repr(exc),
        )

    # --- transaction 1: store, sort out, claim ----------------------------------------------
    async def _prepare(
        self,
        batch: Batch,
        deliveries: list[Delivery],
        credentials: dict[str, Credentials | None] | None,
    ) -> Go:
        now = self._clock()
        async with self._store.transaction() as tx:
            await tx.insert_new([new_dispatch(d) for d in deliveries])
            current = await tx.lock_current([d.event_id for d in deliveries])
            go = sort_out(batch, deliveries, current, credentials, ladder=self._ladder, now=now)
            if go:
                await tx.claim([d.event_id for d, _ in go], batch.id, self._lease_s)
            await self._write_decided(tx, batch)
        return go

    async def _write_decided(self, tx: DeliveryTransaction, batch: Batch) -> None:
        """Inside a transaction: the attempts and state changes decided so far, and the copies
        to delay (published before the commit, see the module docstring)."""
        for record in batch.attempts:
            await tx.record_attempt(record)
        batch.attempts.clear()
        await tx.apply_changes(batch.changes)
        batch.changes.clear()
        await self._publish_redelays(batch)

    # --- the breaker, holding a POST slot ------------------------------------------------------
    async def _admit(self, batch: Batch, go: Go) -> tuple[Go, bool]:
        """What the breaker lets through now, and whether it was closed without failures.

        Asked once the batch holds a POST slot, so it sees what the batches posted before it
        recorded. A closed breaker admits without changing: no lock, so batches of one
        destination do not queue on its row. An open one parks the claimed events.
        """
        now = self._clock()
        breaker = await self._store.read_breaker(batch.destination)
        if breaker.state is BreakerState.CLOSED:
            return go, breaker.consecutive_failures == 0
        async with self._store.transaction() as tx:
            breaker = await tx.lock_breaker(batch.destination)
            gate, admitted = self._policy.admit(breaker, now)
            if gate is Gate.SEND:
                return go, False
            if gate is Gate.PROBE:
                await tx.save_breaker(batch.destination, admitted)
                log.info("breaker half-open: probing", destination=str(batch.destination))
                batch.probe = True
                return go, False
            park(batch, go, admitted, policy=self._policy, ladder=self._ladder, now=now)
            await self._write_decided(tx, batch)
        return [], False

    # --- the POSTs ----------------------------------------------------------------------------
    async def _send_all(
        self,
        batch: Batch,
        go: Go,
        credentials: dict[str, Credentials | None] | None,
        stopping: Callable[[], bool],
    ) -> None:
        assert credentials is not None
        groups: dict[tuple[str, str | None], list[Delivery]] = {}
        for delivery, _ in go:
            creds = credentials[delivery.conversion.funnel_id]
            assert creds is not None
            groups.setdefault((creds.access_token, creds.test_event_code), []).append(delivery)
        sequence = itertools.count(1)
        for (token, test_code), part in groups.items():
            if stopping():
                batch.handed_back.update(d.event_id for d in part)
                continue
            await self._send(batch, part, token, test_code, sequence=sequence, stopping=stopping)

    async def _send(
        self,
        batch: Batch,
        part: list[Delivery],
        token: str,
        test_code: str | None,
        *,
        sequence: itertools.count[int],
        stopping: Callable[[], bool],
    ) -> None:
        started = self._clock()
        answer = await self._meta.post_events(
            batch.destination.pixel_id,
            token,
            [d.conversion.payload for d in part],
            test_code,
        )
        verdict = classify(answer)
        REQUESTS.add(1, {"verdict": verdict.value})
        BATCH_SIZE.record(len(part))
        META_LATENCY.record(answer.latency_ms / 1000)
        if answer.latency_ms > META_SLOW_S * 1000:
            META_SLOW.add(1)
        batch.verdicts.append(answer)
        batch.attempts.append(
            AttemptRecord(
                batch_id=batch.id,
                destination=batch.destination,
                attempt=next(sequence),
                event_ids=[d.event_id for d in part],
                started_at=started,
                finished_at=self._clock(),
                latency_ms=answer.latency_ms,
                outcome=verdict.outcome,
                http_status=answer.http_status,
                meta_code=answer.code,
                meta_subcode=answer.subcode,
                is_transient=answer.is_transient,
                fbtrace_id=answer.fbtrace_id,
                events_received=answer.events_received,
                error_message=answer.message,
                test_event_code=test_code,
            )
        )
        for delivery in part:
            batch.posts[delivery.event_id] = batch.posts.get(delivery.event_id, 0) + 1
        if verdict is Verdict.PAYLOAD and len(part) > 1:
            if stopping():
                batch.handed_back.update(d.event_id for d in part)
                return
            # One bad event refuses the whole request: halve until the offenders stand alone.
            middle = len(part) // 2
            await asyncio.gather(
                self._send(
                    batch, part[:middle], token, test_code, sequence=sequence, stopping=stopping
                ),
                self._send(
                    batch, part[middle:], token, test_code, sequence=sequence, stopping=stopping
                ),
            )
            return
        for delivery in part:
            batch.results[delivery.event_id] = Outcome(verdict, answer)

    # --- transaction 2: outcomes, attempts, breaker -----------------------------------------
    async def _finish(self, batch: Batch, go: Go) -> None:
        now = self._clock()
        for delivery, row in go:
            if delivery.event_id in batch.handed_back:
                # Not attempts: the redelivered original must still pass the stale rule.
                batch.changes.append(Change(row.event_id, None))
                continue
            outcome = batch.results[delivery.event_id]
            settle_event(
                batch, delivery, row, outcome, policy=self._policy, ladder=self._ladder, now=now
            )
        async with self._store.transaction() as tx:
            await tx.apply_changes(batch.changes)
            for record in batch.attempts:
                await tx.record_attempt(record)
            # Last, so a breaker row locked here is held only until the commit.
            await self._record_breaker(tx, batch, now)
            await self._publish_redelays(batch)

    async def _record_breaker(self, tx: DeliveryTransaction, batch: Batch, now: datetime) -> None:
        if not any(classify(answer).breaker_failure for answer in batch.verdicts):
            # Answers only: they reset a count that a closed breaker without failures does not
            # have, so there is nothing to write and no row to lock.
            current = await tx.read_breaker(batch.destination)
            if current.state is BreakerState.CLOSED and current.consecutive_failures == 0:
                return
        breaker = await tx.lock_breaker(batch.destination)
        before = breaker
        for answer in batch.verdicts:
            verdict = classify(answer)
            breaker, transition = self._policy.record(
                breaker,
                verdict,
                now,
                code=answer.code,
                subcode=answer.subcode,
                reason=detail(answer) if verdict.breaker_failure else None,
            )
            if verdict is Verdict.TOKEN:
                self._token_alert(batch.destination, answer)
            if transition is not None:
                self._log_transition(batch.destination, transition, breaker.reason)
        if breaker != before:
            await tx.save_breaker(batch.destination, breaker)

    def _token_alert(self, destination: Destination, answer: MetaAnswer) -> None:
        TOKEN_ERRORS.add(1, {"tenant_id": destination.tenant_id})
        self._destinations.forget(destination.tenant_id)
        log.error(
            "ALERT: Meta rejected the access token; destination parked until it is replaced",
            tenant_id=destination.tenant_id,
            pixel_id=destination.pixel_id,
            meta_code=answer.code,
            meta_subcode=answer.subcode,
            fbtrace_id=answer.fbtrace_id,
        )

    def _log_transition(
        self, destination: Destination, transition: Transition, reason: str | None
    ) -> None:
        BREAKER.add(1, {"transition": transition.value})
        if transition is Transition.CLOSED:
            log.info("breaker closed", destination=str(destination))
        else:
            log.warning(
                f"breaker {transition.value}",
                destination=str(destination),
                tenant_id=destination.tenant_id,
                reason=reason,
            )

    # --- publishing ---------------------------------------------------------------------------
    async def _publish_redelays(self, batch: Batch) -> None:
        # Inside the transaction, before it commits: see the module docstring.
        await asyncio.gather(
            *(self._publisher.delay(d, copy, ms) for d, copy, ms in batch.redelays)
        )
        batch.redelays.clear()

    async def flush_notifications(self) -> None:
        """Wait for the status updates still being published (shutdown)."""
        await self._notices.flush()
