"""The dispatcher's use cases against fakes of their ports: no database, no broker, no HTTP.

Sorting out a batch before any POST, what each of Meta's answers makes of an event, the halving
of a refused request, the breaker parking a batch, dead-letter replay and the monitor's sweep.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from trackai_dispatcher.domain.breaker import Breaker, BreakerPolicy, BreakerState
from trackai_dispatcher.domain.classification import MetaAnswer, Verdict
from trackai_dispatcher.domain.conversion import UserData
from trackai_dispatcher.domain.model import Reason, RetryLadder, State
from trackai_dispatcher.service_layer.batch import Batch, Disposition, Outcome
from trackai_dispatcher.service_layer.delivery import Dispatcher
from trackai_dispatcher.service_layer.dlq import (
    REPLAYED,
    SKIPPED_EXPIRED,
    SKIPPED_SENT,
    DeadLetters,
    NotReplayableError,
    replay_outcome,
)
from trackai_dispatcher.service_layer.monitor import Monitor, expiry_horizon
from trackai_dispatcher.service_layer.ports import (
    Credentials,
    CredentialUnusable,
    Current,
    DeadFilter,
    Expired,
    HealthCounts,
    RegistryRefused,
)
from trackai_dispatcher.service_layer.settling import settle_event
from trackai_dispatcher.service_layer.sorting import sort_out
from trackai_testing.fakes import FakeClock, Recorder

from .fakes import (
    DESTINATION,
    FakeDestinations,
    FakeMeta,
    MemoryDeliveryStore,
    MemoryReplaySession,
    Row,
    delivery,
    stored,
)

CLOCK = FakeClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
NOW = CLOCK()
FRESH = int(NOW.timestamp()) - 3600
EIGHT_DAYS_AGO = int((NOW - timedelta(days=8)).timestamp())
LADDER = RetryLadder((1000, 5000), park_delays_ms=(60_000,))
POLICY = BreakerPolicy(
    threshold=3, cooldown=timedelta(seconds=60), probe_lease=timedelta(seconds=5)
)
CREDS = {"f1": Credentials("token", None)}


def batch() -> Batch:
    return Batch(uuid.uuid4(), DESTINATION)


# --- transaction 1: sorting out -----------------------------------------------------------------


def test_sorting_out_drops_leftovers_defers_claimed_and_settles_the_hopeless() -> None:
    b = batch()
    deliveries = [
        delivery("sent", FRESH),
        delivery("superseded", FRESH, copy=0),
        delivery("claimed", FRESH, copy=1),
        delivery("old", EIGHT_DAYS_AGO),
        delivery("invalid", FRESH, user_data=None),
        delivery("orphan", FRESH, funnel="f2"),
        delivery("good", FRESH),
    ]
    current = {
        "sent": Current("sent", State.SENT, 1, 0, False),
        "superseded": Current("superseded", State.RETRYING, 2, 1, False),
        "claimed": Current("claimed", State.PENDING, 0, 0, True),
        "old": Current("old", State.PENDING, 0, 0, False),
        "invalid": Current("invalid", State.PENDING, 0, 0, False),
        "orphan": Current("orphan", State.PENDING, 0, 0, False),
        "good": Current("good", State.PARKED, 0, 0, False),
    }
    go = sort_out(b, deliveries, current, {**CREDS, "f2": None}, ladder=LADDER, now=NOW)
    assert [d.event_id for d, _ in go] == ["good"]
    # The claimed copy waits out the live batch on the first step of the ladder.
    assert [(d.event_id, copy, ms) for d, copy, ms in b.redelays] == [("claimed", 1, 1000)]
    settled = {c.event_id: (c.state, c.reason) for c in b.changes}
    assert settled == {
        "old": (State.EXPIRED, Reason.EVENT_TOO_OLD),
        "invalid": (State.DEAD, Reason.INVALID_EVENT),
        "orphan": (State.DEAD, Reason.NO_DESTINATION),
    }
    # Only the invalid event leaves an attempt row (Meta never saw it).
    assert [list(a.event_ids) for a in b.attempts] == [["invalid"]]


def test_sorting_out_with_the_registry_down_defers_every_event() -> None:
    b = batch()
    current = {"e": Current("e", State.PENDING, 0, 0, False)}
    assert sort_out(b, [delivery("e", FRESH)], current, None, ladder=LADDER, now=NOW) == []
    assert [d.event_id for d, _, _ in b.redelays] == ["e"] and b.changes == []


def test_a_website_event_needs_a_user_agent() -> None:
    b = batch()
    d = delivery("w", FRESH, action_source="website", event_source_url="https://x.test/",
                 user_data=UserData(hashed={"em": ("a" * 64,)}))  # fmt: skip
    sort_out(b, [d], {"w": Current("w", State.PENDING, 0, 0, False)}, CREDS, ladder=LADDER, now=NOW)
    assert b.changes[0].state is State.DEAD
    assert "client_user_agent" in (b.changes[0].detail or "")


# --- transaction 2: settling one event ------------------------------------------------------------


def answer(status: int, code: int | None = None, subcode: int | None = None) -> MetaAnswer:
    error = {"code": code, "error_subcode": subcode, "message": "m"} if code else None
    return MetaAnswer(http_status=status, latency_ms=1.0, body={"error": error} if error else {})


@pytest.mark.parametrize(
    ("verdict", "meta", "retry_step", "probe", "state", "reason", "delay_ms"),
    [
        (Verdict.SENT, answer(200), 0, False, State.SENT, None, None),
        (Verdict.RETRYABLE, answer(503, 2), 0, False, State.RETRYING, "retryable", 1000),
        (Verdict.RETRYABLE, answer(503, 2), 1, False, State.RETRYING, "retryable", 5000),
        (Verdict.RETRYABLE, answer(503, 2), 2, False, State.DEAD, Reason.RETRIES_EXHAUSTED, None),
        (Verdict.TIMEOUT, answer(503, 2), 0, True, State.PARKED, "timeout", 60_000),
        (Verdict.TOKEN, answer(400, 190), 0, False, State.PARKED, Reason.META_TOKEN, 60_000),
        (Verdict.PAYLOAD, answer(400, 100), 0, False, State.DEAD, Reason.META_REJECTED, None),
        (Verdict.PAYLOAD, answer(400, 100, 2804003), 0, False, State.EXPIRED, Reason.EVENT_TOO_OLD, None),
        (Verdict.DESTINATION, answer(403, 10), 0, False, State.DEAD, Reason.META_PERMANENT, None),
    ],
)  # fmt: skip
def test_what_metas_answer_makes_of_an_event(
    verdict: Verdict,
    meta: MetaAnswer,
    retry_step: int,
    probe: bool,
    state: State,
    reason: str | None,
    delay_ms: int | None,
) -> None:
    b = batch()
    b.probe = probe
    b.posts["e"] = 1
    d = delivery("e", FRESH)
    row = Current("e", State.PENDING, 2, retry_step, True)
    settle_event(b, d, row, Outcome(verdict, meta), policy=POLICY, ladder=LADDER, now=NOW)
    (change,) = b.changes
    assert (change.state, change.reason, change.posts) == (state, reason, 1)
    if delay_ms is None:
        assert b.redelays == []
    else:
        # The copy carries the POSTs recorded so far: the stored two and this batch's one.
        assert [(copy, ms) for _, copy, ms in b.redelays] == [(3, delay_ms)]


# --- the whole batch with fakes -------------------------------------------------------------------


def dispatcher(store: MemoryDeliveryStore, meta: FakeMeta, destinations: FakeDestinations,
               publisher: Recorder, notifier: Recorder) -> Dispatcher:  # fmt: skip
    return Dispatcher(
        store, meta, destinations, publisher, notifier,
        policy=POLICY, ladder=LADDER, claim_lease_s=30.0, concurrency=2, clock=CLOCK,
    )  # fmt: skip


async def test_a_refused_request_is_halved_until_the_bad_event_stands_alone() -> None:
    store, meta, publisher, notifier = (
        MemoryDeliveryStore(),
        FakeMeta(bad={"e2"}),
        Recorder(),
        Recorder(),
    )
    d = dispatcher(store, meta, FakeDestinations(CREDS), publisher, notifier)
    deliveries = [delivery(f"e{i}", FRESH) for i in range(4)]
    dispositions = await d.dispatch(DESTINATION, deliveries)
    await d.flush_notifications()
    assert dispositions == [Disposition.ACK] * 4
    assert meta.requests[0] == ["e0", "e1", "e2", "e3"]
    assert sorted(map(tuple, meta.requests[1:])) == [("e0", "e1"), ("e2",), ("e2", "e3"), ("e3",)]
    assert {e: r.state for e, r in store.rows.items()} == {
        "e0": State.SENT, "e1": State.SENT, "e2": State.DEAD, "e3": State.SENT,
    }  # fmt: skip
    # Each event counts every POST that carried it.
    assert {e: r.attempts for e, r in store.rows.items()} == {"e0": 2, "e1": 2, "e2": 3, "e3": 3}
    assert store.breaker == Breaker()  # a bad payload is not the destination's failure
    ((updates,),) = notifier.args("statuses")
    assert sorted((u.event_id, u.status) for u in updates) == [
        ("e0", "sent"), ("e1", "sent"), ("e2", "dead"), ("e3", "sent"),
    ]  # fmt: skip


async def test_two_copies_of_one_event_in_a_batch_post_once_as_the_newer() -> None:
    # One POST recorded: copy 0 is a leftover, copy 1 (the retry) is the live one.
    store, meta = MemoryDeliveryStore(rows={"e": Row(State.RETRYING, attempts=1)}), FakeMeta()
    d = dispatcher(store, meta, FakeDestinations(CREDS), Recorder(), Recorder())
    await d.dispatch(DESTINATION, [delivery("e", FRESH, copy=0), delivery("e", FRESH, copy=1)])
    assert meta.requests == [["e"]]
    assert store.rows["e"].state is State.SENT and store.rows["e"].attempts == 2


async def test_with_the_registry_away_nothing_is_posted_and_copies_wait() -> None:
    store, meta, publisher = MemoryDeliveryStore(), FakeMeta(), Recorder()
    d = dispatcher(
        store, meta, FakeDestinations(CREDS, ConnectionError("away")), publisher, Recorder()
    )
    dispositions = await d.dispatch(DESTINATION, [delivery("a", FRESH), delivery("b", FRESH)])
    assert dispositions == [Disposition.ACK, Disposition.ACK]
    assert meta.requests == []
    assert [(dl.event_id, copy, ms) for dl, copy, ms in publisher.args("delay")] == [
        ("a", 0, 1000), ("b", 0, 1000),
    ]  # fmt: skip
    assert {r.state for r in store.rows.values()} == {State.PENDING}


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (RegistryRefused("PERMISSION_DENIED: no"), "the tenant registry refused the dispatcher"),
        (CredentialUnusable("FAILED_PRECONDITION: cannot decrypt"), "cannot decrypt"),
    ],
)
async def test_a_registry_refusal_kills_the_events_with_its_reason(
    error: Exception, detail: str
) -> None:
    store, meta = MemoryDeliveryStore(), FakeMeta()
    d = dispatcher(store, meta, FakeDestinations(CREDS, error), Recorder(), Recorder())
    await d.dispatch(DESTINATION, [delivery("a", FRESH)])
    assert meta.requests == []
    assert store.rows["a"].state is State.DEAD
    assert store.rows["a"].reason == Reason.NO_DESTINATION
    assert detail in (store.rows["a"].detail or "")


async def test_an_open_breaker_parks_the_batch_until_its_probe() -> None:
    probe_after = NOW + timedelta(seconds=90)
    opened = Breaker(state=BreakerState.OPEN, consecutive_failures=3, opened_at=NOW,
                     probe_after=probe_after, reason="HTTP 503")  # fmt: skip
    store, meta, publisher = MemoryDeliveryStore(breaker=opened), FakeMeta(), Recorder()
    d = dispatcher(store, meta, FakeDestinations(CREDS), publisher, Recorder())
    await d.dispatch(DESTINATION, [delivery("a", FRESH)])
    assert meta.requests == []
    assert store.rows["a"].state is State.PARKED
    # Back at the longest delay not beyond the probe time (90 s: the 60 s park queue).
    assert [ms for _, _, ms in publisher.args("delay")] == [60_000]
    assert [a.outcome.value for a in store.attempts] == ["breaker_open"]


async def test_failures_open_the_breaker_and_retries_wait_on_the_ladder() -> None:
    store, meta, publisher = MemoryDeliveryStore(), FakeMeta(down=True), Recorder()
    d = dispatcher(store, meta, FakeDestinations(CREDS), publisher, Recorder())
    for n in range(3):
        await d.dispatch(DESTINATION, [delivery(f"e{n}", FRESH)])
    assert store.breaker.state is BreakerState.OPEN
    assert {r.state for r in store.rows.values()} == {State.RETRYING}
    assert [ms for _, _, ms in publisher.args("delay")] == [1000, 1000, 1000]


async def test_stopping_hands_the_unposted_events_back() -> None:
    store, meta = MemoryDeliveryStore(), FakeMeta()
    d = dispatcher(store, meta, FakeDestinations(CREDS), Recorder(), Recorder())
    dispositions = await d.dispatch(DESTINATION, [delivery("a", FRESH)], stopping=lambda: True)
    assert dispositions == [Disposition.REQUEUE]
    assert meta.requests == []
    # Unchanged and released: the redelivered original is still the current copy.
    assert store.rows["a"] == Row(State.PENDING, 0, 0, False)


# --- dead-letter replay ---------------------------------------------------------------------------


def test_replay_never_resends_a_sent_event_nor_one_meta_would_refuse_as_old() -> None:
    now = NOW.timestamp()
    assert replay_outcome(stored("s", State.SENT, NOW), now) == SKIPPED_SENT
    assert replay_outcome(stored("o", State.DEAD, NOW - timedelta(days=8)), now) == SKIPPED_EXPIRED
    assert replay_outcome(stored("d", State.DEAD, NOW - timedelta(days=6)), now) == REPLAYED


async def test_replaying_the_dlq_requeues_the_live_and_expires_the_old() -> None:
    rows = {
        "a": stored("a", State.DEAD, NOW - timedelta(hours=1), attempts=4),
        "b": stored("b", State.DEAD, NOW - timedelta(days=8)),
        "c": stored("c", State.SENT, NOW),
    }
    session, replayer = MemoryReplaySession(rows), Recorder()
    result = await DeadLetters(session, replayer, clock=CLOCK).replay_matching(
        DeadFilter(), "ops", "", everything=True
    )
    assert (result.selected, result.replayed, result.skipped_expired) == (2, 1, 1)
    assert session.requeued == ["a"] and session.expired == ["b"]
    # The copy carries the POSTs already recorded, so the stale rule lets it through.
    assert [(s.event_id, copy) for s, copy in replayer.args("replay")] == [("a", 4)]
    assert session.replays == [("all", DeadFilter())]


async def test_replaying_one_event_still_being_delivered_is_refused() -> None:
    rows = {"r": stored("r", State.RETRYING, NOW)}
    with pytest.raises(NotReplayableError):
        await DeadLetters(MemoryReplaySession(rows), Recorder(), clock=CLOCK).replay_one(
            "r", "ops", ""
        )


# --- the monitor ----------------------------------------------------------------------------------


async def test_the_monitor_expires_overdue_events_and_flags_a_meta_wide_outage() -> None:
    expired = [Expired("e1", "t1"), Expired("e2", "t2")]
    store = Recorder(
        answers={
            "expire_overdue": lambda horizon, detail: expired,
            "failing_destinations": lambda window: 5,
            "health_counts": lambda: HealthCounts(dead=7, open=1, half_open=0),
            "unclosed_breakers": lambda: [],
        }
    )
    notifier = Recorder()
    monitor = Monitor(store, notifier, outage_destinations=5, outage_window_s=60, clock=CLOCK)
    await monitor.check()
    ((horizon, _),) = store.args("expire_overdue")
    assert horizon == expiry_horizon(NOW) and NOW - horizon < timedelta(days=7)
    ((updates,),) = notifier.args("statuses")
    assert [(u.tenant_id, u.event_id, u.status) for u in updates] == [
        ("t1", "e1", "expired"), ("t2", "e2", "expired"),
    ]  # fmt: skip
    assert monitor.outage and monitor.counts == HealthCounts(7, 1, 0)


async def test_the_monitor_tells_nobody_when_nothing_expired() -> None:
    store = Recorder(
        answers={
            "expire_overdue": lambda horizon, detail: [],
            "failing_destinations": lambda window: 4,
            "health_counts": lambda: HealthCounts(0, 0, 0),
            "unclosed_breakers": lambda: [],
        }
    )
    notifier = Recorder()
    monitor = Monitor(store, notifier, outage_destinations=5, outage_window_s=60, clock=CLOCK)
    await monitor.check()
    assert notifier.calls == [] and not monitor.outage
