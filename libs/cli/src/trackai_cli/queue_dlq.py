"""`trackai dlq list|replay --queue <queue>`: the messages a queue dead-lettered to ``<queue>.dlq``.

Read straight from RabbitMQ (``AMQP_URL``, ``AMQP_PREFIX``): listing takes messages without
acknowledging them and closes the channel, which returns them all (a DLQ's delivery limit is set
so high that this never drops one). Replay publishes a copy to ``<queue>`` with confirms, then
acknowledges the dead letter; the copy restarts its retry window and records who replayed it.
Replaying twice is harmless: consumers drop a message id they already processed. The copy's
``x-trackai-replayed-by`` header names who replayed it, and the consumer logs it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aio_pika.abc

from trackai_cli.core import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, Context
from trackai_kit.amqp import FIRST_FAILURE_HEADER, REPLAYED_BY_HEADER, RETRIES_HEADER
from trackai_kit.topology import CAPI_DISPATCH, INGEST_EVENTS, dlq_name

#: Queues whose dead letters can be read here (each has a ``.dlq``).
QUEUES = (INGEST_EVENTS, CAPI_DISPATCH)


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    message_type: str
    size: int
    reason: str
    from_queue: str
    count: int
    dead_time: str
    retries: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def line(self) -> str:
        return (
            f"{self.message_id or '-':<36}  {self.message_type or '-':<36} {self.reason:<14} "
            f"{self.from_queue:<28} x{self.count:<3} {self.dead_time:<20} {self.retries:>3}  "
            f"{self.size} B"
        )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def dead_letter(message: aio_pika.abc.AbstractIncomingMessage) -> DeadLetter:
    """What the broker recorded when it dead-lettered ``message`` (its latest ``x-death``)."""
    headers = message.headers or {}
    deaths = headers.get("x-death")
    death: dict[str, Any] = deaths[0] if isinstance(deaths, list) and deaths else {}  # type: ignore[assignment]
    when = death.get("time")
    retries = headers.get(RETRIES_HEADER)
    return DeadLetter(
        message_id=message.message_id or "",
        message_type=message.type or "",
        size=len(message.body),
        reason=_text(death.get("reason", "unknown")),
        from_queue=_text(death.get("queue", "")),
        count=int(death.get("count", 0) or 0),
        dead_time=when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(when, dt.datetime)
        else "",
        retries=retries if isinstance(retries, int) else 0,
    )


Command = Callable[[argparse.Namespace, Context], Awaitable[int]]


def _broker_errors(command: Command) -> Command:
    """Turn an unreachable broker or a missing queue into the CLI's usual message and exit code."""

    @functools.wraps(command)
    async def run(args: argparse.Namespace, ctx: Context) -> int:
        try:
            return await command(args, ctx)
        except aio_pika.exceptions.ChannelNotFoundEntity as exc:
            sys.stderr.write(f"error: {exc} (is the topology declared? check AMQP_PREFIX)\n")
            return EXIT_REFUSED
        except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
            where = urlsplit(ctx.settings.amqp_url)
            sys.stderr.write(
                f"error: cannot reach RabbitMQ at {where.hostname}:{where.port or 5672} "
                f"({type(exc).__name__}); set AMQP_URL\n"
            )
            return EXIT_UNREACHABLE

    return run


async def _open(ctx: Context) -> aio_pika.abc.AbstractConnection:
    return await aio_pika.connect(
        ctx.settings.amqp_url, client_properties={"connection_name": "trackai-cli"}
    )


async def _take(
    channel: aio_pika.abc.AbstractChannel, queue: str, limit: int
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Up to ``limit`` messages of ``queue``, unacknowledged (returned when the channel closes)."""
    amqp_queue = await channel.get_queue(queue, ensure=True)
    taken: list[aio_pika.abc.AbstractIncomingMessage] = []
    while len(taken) < limit:
        message = await amqp_queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    return taken


@_broker_errors
async def list_dead(args: argparse.Namespace, ctx: Context) -> int:
    dlq = ctx.settings.amqp_prefix + dlq_name(args.queue)
    connection = await _open(ctx)
    try:
        channel = await connection.channel()
        letters = [dead_letter(m) for m in await _take(channel, dlq, args.limit)]
        await channel.close()  # returns every message taken
    finally:
        await connection.close()
    if ctx.out.as_json:
        ctx.out.json_lines([d.as_dict() for d in letters])
        return 0
    sys.stdout.write(
        f"{len(letters)} dead letter(s) in {dlq}: message_id  type  reason  dead-lettered by  "
        "times  when  retries  size\n"
    )
    for letter in letters:
        sys.stdout.write(letter.line() + "\n")
    return 0


@_broker_errors
async def replay_dead(args: argparse.Namespace, ctx: Context) -> int:
    if not (args.message_id or args.all):
        sys.stderr.write("error: give --message-id or --all\n")
        return EXIT_USAGE
    prefix = ctx.settings.amqp_prefix
    source, target = prefix + dlq_name(args.queue), prefix + args.queue
    connection = await _open(ctx)
    replayed: list[str] = []
    try:
        reader = await connection.channel()
        publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        for message in await _take(reader, source, args.limit):
            if not args.all and message.message_id != args.message_id:
                continue
            headers = {
                k: v
                for k, v in (message.headers or {}).items()
                if k not in (RETRIES_HEADER, FIRST_FAILURE_HEADER)
            }
            headers[REPLAYED_BY_HEADER] = args.by
            await publisher.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    message_id=message.message_id,
                    type=message.type,
                    content_type=message.content_type,
                    headers=headers,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                target,
                mandatory=True,
            )
            # Only once the copy is confirmed: a failure in between leaves a duplicate, which
            # the consumer drops, never a loss.
            await message.ack()
            replayed.append(message.message_id or "")
        await reader.close()
    finally:
        await connection.close()
    if ctx.out.as_json:
        ctx.out.json_lines([{"queue": args.queue, "replayed": replayed, "requested_by": args.by}])
    else:
        sys.stdout.write(
            f"replayed {len(replayed)} message(s) from {source} to {target} (by {args.by})\n"
        )
    if args.message_id and not replayed:
        sys.stderr.write(f"error: no message {args.message_id} among the first {args.limit}\n")
        return EXIT_REFUSED
    return 0
