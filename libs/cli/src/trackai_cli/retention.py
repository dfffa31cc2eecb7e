"""`trackai retention run`: every service's retention sweeps once, now (docs/runbooks/retention.md).

Each data-holding service runs its own rules through its gRPC ``RunRetention`` (with its own
database role); the same rules run by themselves every hour. A service that cannot be reached or
refuses is reported and the others still run; the exit code is then that failure's.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import grpc

from trackai.common.v1 import common_service_pb2 as pb
from trackai.common.v1 import common_service_pb2_grpc as pb_grpc
from trackai_cli.core import EXIT_REFUSED, EXIT_UNREACHABLE, Context, SubParsers, command

#: The services that hold data under retention rules, in the order they run.
SERVICES = ("ingestion", "matcher", "dispatcher")
#: A run sweeps up to 100,000 rows per rule: give it minutes, not the CLI's usual seconds.
DEFAULT_TIMEOUT_S = 600.0
_ACTIONS = {pb.RETENTION_ACTION_DELETE: "deleted", pb.RETENTION_ACTION_BLANK: "blanked"}


def _record(service: str, rule: pb.RetentionRuleResult) -> dict[str, Any]:
    return {
        "service": service,
        "rule": rule.rule,
        "table": rule.table,
        "action": _ACTIONS.get(rule.action, "unknown"),
        "keep_days": rule.keep.ToTimedelta().total_seconds() / 86_400,
        "rows": rule.rows,
        "more": rule.more,
    }


def _line(*cells: str) -> str:
    """service, rule, table, keep, action, rows: one aligned line."""
    service, rule, table, keep, action, rows = cells
    return f"{service:<11} {rule:<14} {table:<32} {keep:>5} {action:<8} {rows:>9}"


async def _run(args: argparse.Namespace, ctx: Context) -> int:
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    code = 0
    for service in args.service or SERVICES:
        stub = pb_grpc.RetentionServiceStub(ctx.channel(service))
        try:
            answer = await stub.RunRetention(pb.RunRetentionRequest(), timeout=args.timeout)
        except grpc.aio.AioRpcError as exc:
            unreachable = exc.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )
            sys.stderr.write(
                f"error: {service} at {ctx.settings.target(service)}: "
                f"{exc.code().name}: {exc.details()}\n"
            )
            code = code or (EXIT_UNREACHABLE if unreachable else EXIT_REFUSED)
            continue
        for rule in answer.rules:
            record = _record(answer.service or service, rule)
            records.append(record)
            line = _line(
                record["service"],
                rule.rule,
                rule.table,
                f"{record['keep_days']:g}d",
                record["action"],
                str(rule.rows),
            )
            lines.append(line + ("  (more left: run again)" if rule.more else ""))
    if ctx.out.as_json:
        sys.stdout.write(json.dumps(records) + "\n")
    else:
        sys.stdout.write(_line("service", "rule", "table", "keep", "", "rows") + "\n")
        for line in lines:
            sys.stdout.write(line + "\n")
    return code


def register(groups: SubParsers) -> None:
    retention = groups.add_parser("retention", help="data retention (LGPD)")
    sub = retention.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run every service's retention sweeps once and print what they removed",
    )
    run.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        help="only this service (repeatable; default: all of them)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds each service may take (default {DEFAULT_TIMEOUT_S:g})",
    )
    command(run, _run)
