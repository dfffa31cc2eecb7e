"""`trackai dlq`: list the dispatcher's dead letters and replay them (one, a filter, or all).

With ``--queue ingest-events`` (or ``capi-dispatch``) the same commands read that queue's
RabbitMQ dead-letter queue instead (:mod:`trackai_cli.queue_dlq`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from trackai.dispatcher.v1 import dispatcher_service_pb2 as pb
from trackai.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from trackai_cli import queue_dlq
from trackai_cli.core import EXIT_USAGE, Context, SubParsers, command

if TYPE_CHECKING:
    from trackai.dispatcher.v1.dispatcher_service_pb2_grpc import DispatcherServiceAsyncStub


def _timestamp(value: str) -> Timestamp:
    stamp = Timestamp()
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r}: give a time zone, e.g. 2026-11-29T10:00Z")
    stamp.FromDatetime(moment)
    return stamp


def _filter(args: argparse.Namespace) -> pb.DeadLetterFilter:
    where = pb.DeadLetterFilter(tenant_id=args.tenant or "", reason=args.reason or "")
    if args.since is not None:
        where.start_time.CopyFrom(args.since)
    if args.until is not None:
        where.end_time.CopyFrom(args.until)
    return where


def _stub(ctx: Context) -> DispatcherServiceAsyncStub:
    return pb_grpc.DispatcherServiceStub(ctx.channel("dispatcher"))


async def _list(args: argparse.Namespace, ctx: Context) -> int:
    if args.queue:
        return await queue_dlq.list_dead(args, ctx)
    stub = _stub(ctx)
    letters: list[pb.DeadLetter] = []
    token = ""
    while len(letters) < args.limit:
        response = await stub.ListDeadLetters(
            pb.ListDeadLettersRequest(
                filter=_filter(args),
                page_size=min(500, args.limit - len(letters)),
                page_token=token,
            ),
            timeout=ctx.deadline_s,
        )
        letters.extend(response.dead_letters)
        token = response.next_page_token
        if not token:
            break
    ctx.out.records(
        letters,
        [
            f"{d.event_id}  {d.tenant_id}  {d.event_name:<16} {d.reason:<18} "
            f"{d.dead_time.ToDatetime().isoformat(timespec='seconds')}Z  "
            f"{'replayable' if d.replayable else 'expired':<10}  {d.detail}"
            for d in letters
        ],
        f"{len(letters)} dead letter(s): event_id  tenant  event  reason  dead since  "
        "replayable  detail",
    )
    return 0


async def _replay(args: argparse.Namespace, ctx: Context) -> int:
    if args.queue:
        if args.event_id or args.tenant or args.reason or args.since or args.until:
            sys.stderr.write("error: with --queue give --message-id or --all\n")
            return EXIT_USAGE
        return await queue_dlq.replay_dead(args, ctx)
    if args.message_id:
        sys.stderr.write("error: --message-id needs --queue\n")
        return EXIT_USAGE
    request = pb.ReplayDeadLettersRequest(requested_by=args.by, note=args.note or "")
    filtered = bool(args.tenant or args.reason or args.since or args.until)
    if filtered and (args.event_id or args.all):
        sys.stderr.write("error: --event-id and --all take no filter options\n")
        return EXIT_USAGE
    if args.event_id:
        request.event_id = args.event_id
    elif args.all:
        request.all = True
    elif filtered:
        request.filter.CopyFrom(_filter(args))
    else:
        sys.stderr.write(
            "error: give --event-id, a filter (--tenant/--reason/--since/--until) or --all\n"
        )
        return EXIT_USAGE
    response = await _stub(ctx).ReplayDeadLetters(request, timeout=ctx.deadline_s)
    ctx.out.record(
        response,
        f"replay {response.replay_id}: {response.selected} selected, {response.replayed} "
        f"replayed, {response.skipped_already_sent} already sent, {response.expired} expired "
        "(past Meta's 7-day limit)",
    )
    return 0


def _queue(parser: argparse.ArgumentParser, limit: int) -> None:
    parser.add_argument(
        "--queue",
        choices=queue_dlq.QUEUES,
        help="read this queue's RabbitMQ dead-letter queue (<queue>.dlq) instead",
    )
    parser.add_argument("--limit", type=int, default=limit, help=f"most to read ({limit})")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="tenant id")
    parser.add_argument("--reason", help="e.g. invalid_event, meta_rejected, retries_exhausted")
    parser.add_argument("--since", type=_timestamp, help="dead since (ISO 8601 with zone)")
    parser.add_argument("--until", type=_timestamp, help="dead before (ISO 8601 with zone)")


def register(groups: SubParsers) -> None:
    dlq = groups.add_parser("dlq", help="the dispatcher's dead letters")
    sub = dlq.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="dead events with their reasons, newest first")
    _filters(listing)
    _queue(listing, 100)
    command(listing, _list)

    replay = sub.add_parser(
        "replay",
        help="send dead events again (sent ones are skipped, expired ones marked expired)",
    )
    selector = replay.add_mutually_exclusive_group()
    selector.add_argument("--event-id", help="one event")
    selector.add_argument("--message-id", help="one message of the --queue DLQ")
    selector.add_argument("--all", action="store_true", help="every dead event")
    _filters(replay)
    _queue(replay, 1000)
    replay.add_argument("--by", required=True, help="who replays (recorded; a name, not an e-mail)")
    replay.add_argument("--note", help="why (recorded)")
    command(replay, _replay)
