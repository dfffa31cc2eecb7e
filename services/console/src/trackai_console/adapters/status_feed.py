"""Consumes ``trackai.status`` into the live hub: one exclusive, auto-deleted queue per console
process bound to every routing key, so each replica sees every update for its own browsers
(nothing durable: a status is a notification; pages re-read the truth from the owners)."""

from __future__ import annotations

import asyncio
import hashlib

import aio_pika
from google.protobuf.message import DecodeError

from trackai.common.v1 import events_pb2 as common_pb
from trackai_console.service_layer.ports import StatusSink
from trackai_kit.backoff import Backoff
from trackai_kit.logging import get_logger
from trackai_kit.topology import STATUS_EXCHANGE

log = get_logger(__name__)


class AmqpStatusFeed:
    def __init__(self, url: str, prefix: str, hub: StatusSink) -> None:
        self._url = url
        self._exchange = f"{prefix}{STATUS_EXCHANGE}"
        self._hub = hub
        self.ready = asyncio.Event()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process(ignore_processed=True):
            try:
                update = common_pb.StatusUpdate.FromString(message.body)
            except DecodeError:
                log.warning("undecodable status message dropped", message_id=message.message_id)
                return
            if not update.tenant_id:
                return
            entity = common_pb.StatusEntity.Name(update.entity).removeprefix("STATUS_ENTITY_")
            await self._hub.publish(
                update.tenant_id,
                entity=entity.lower(),
                entity_id=update.entity_id,
                status=update.status,
                detail=update.detail,
                stage=update.stage,
                score=update.score,
                # Every replica gets this message: its id names it in the shared history.
                key=message.message_id or hashlib.sha256(message.body).hexdigest(),
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; reconnects with back-off while the broker is away."""
        backoff = Backoff()
        while not stop.is_set():
            try:
                connection = await aio_pika.connect_robust(
                    self._url, client_properties={"connection_name": "console-status"}
                )
            except Exception as exc:
                log.warning("status feed: broker not reachable", error=repr(exc))
                await backoff.pause(stop)
                continue
            try:
                channel = await connection.channel()
                exchange = await channel.declare_exchange(
                    self._exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
                queue = await channel.declare_queue(exclusive=True, auto_delete=True)
                await queue.bind(exchange, "#")
                await queue.consume(self._on_message)
                self.ready.set()
                log.info("status feed consuming", exchange=self._exchange)
                await stop.wait()
            finally:
                await connection.close()
