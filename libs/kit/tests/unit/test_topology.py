"""The topology data: quorum queues with at-least-once dead-lettering, delay queues, prefixes."""

from __future__ import annotations

from trackai_kit.topology import (
    CAPI_DISPATCH,
    DELIVERY_LIMIT,
    DLQ_DELIVERY_LIMIT,
    INGEST_EVENTS,
    INGEST_RETRY_DELAYS_MS,
    STATUS_EXCHANGE,
    QueueSpec,
    dispatcher_topology,
    ingestion_topology,
    matcher_topology,
    status_topology,
)


def test_work_queue_dead_letters_at_least_once_to_its_dlq() -> None:
    (queue,) = ingestion_topology().queues
    assert queue.name == INGEST_EVENTS
    assert queue.arguments() == {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "ingest-events.dlq",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    names = [q.name for q in ingestion_topology().all_queues()]
    assert names == ["ingest-events.dlq", "ingest-events"]
    dlq = ingestion_topology().all_queues()[0]
    # Listing a DLQ returns its messages (a delivery each): it must never reach its limit.
    assert dlq.arguments() == {"x-queue-type": "quorum", "x-delivery-limit": DLQ_DELIVERY_LIMIT}


def test_dispatcher_has_retry_delay_queues_back_to_capi_dispatch() -> None:
    topo = dispatcher_topology()
    delays = {q.name: q for q in topo.queues if ".retry." in q.name}
    assert sorted(delays) == sorted(
        f"capi-dispatch.retry.{ms}" for ms in (1000, 2000, 4000, 8000, 16000)
    )
    retry = delays["capi-dispatch.retry.4000"]
    assert retry.arguments()["x-message-ttl"] == 4000
    assert retry.arguments()["x-dead-letter-routing-key"] == CAPI_DISPATCH
    assert retry.dlq() is None
    assert [e.name for e in topo.exchanges] == [STATUS_EXCHANGE]


def test_matcher_declares_both_work_queues_and_its_retry_delays() -> None:
    names = {q.name for q in matcher_topology().queues}
    assert {INGEST_EVENTS, CAPI_DISPATCH} <= names
    assert names - {INGEST_EVENTS, CAPI_DISPATCH} == {
        f"ingest-events.retry.{ms}" for ms in INGEST_RETRY_DELAYS_MS
    }
    retry = next(q for q in matcher_topology().queues if q.name.startswith("ingest-events.retry"))
    assert retry.arguments()["x-dead-letter-routing-key"] == INGEST_EVENTS


def test_every_queue_has_an_explicit_delivery_limit() -> None:
    topo = ingestion_topology().merge(matcher_topology()).merge(dispatcher_topology())
    for queue in topo.all_queues():
        assert queue.arguments()["x-delivery-limit"] > 0, queue.name


def test_prefix_applies_to_every_name_and_dead_letter_target() -> None:
    topo = dispatcher_topology().merge(status_topology())
    topo = type(topo)(
        exchanges=topo.exchanges,
        queues=(*topo.queues, QueueSpec("console-status", bindings=((STATUS_EXCHANGE, "#"),))),
    ).prefixed("t1.")
    names = {q.name for q in topo.all_queues()}
    assert "t1.capi-dispatch.dlq" in names and "t1.capi-dispatch.retry.1000" in names
    retry = next(q for q in topo.queues if q.name == "t1.capi-dispatch.retry.1000")
    assert retry.arguments()["x-dead-letter-routing-key"] == "t1.capi-dispatch"
    work = next(q for q in topo.queues if q.name == "t1.capi-dispatch")
    assert work.arguments()["x-dead-letter-routing-key"] == "t1.capi-dispatch.dlq"
    console = next(q for q in topo.queues if q.name == "t1.console-status")
    assert console.bindings == (("t1.trackai.status", "#"),)
    assert [e.name for e in topo.exchanges] == ["t1.trackai.status"]
    assert len(topo.exchanges) == 1  # merge does not duplicate
