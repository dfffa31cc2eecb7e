"""Data retention (LGPD: keep personal data no longer than its purpose needs): rules that delete
old rows, or blank their raw network data, in small batches so a sweep never holds long locks.

Each service lists its rules (tables, ages from its settings) and runs :class:`RetentionTask` in
a long-running process; its gRPC server also serves :class:`RetentionServicer` (``RunRetention``,
the operator's `trackai retention run`). The rules are documented in docs/schema and
docs/runbooks/retention.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
import grpc

from trackai.common.v1 import common_service_pb2 as pb
from trackai.common.v1 import common_service_pb2_grpc as pb_grpc
from trackai_kit.grpc import rpcs
from trackai_kit.logging import get_logger
from trackai_kit.postgres import check_identifier

log = get_logger(__name__)

#: Rows touched per statement: short transactions, bounded lock and WAL bursts.
BATCH_SIZE = 2000
#: Statements per rule per sweep; the rest waits for the next sweep.
MAX_BATCHES = 50


@dataclass(frozen=True)
class Rule:
    """Rows of ``table`` whose ``age_column`` is older than ``keep`` are deleted, or, with
    ``blank``, updated by that ``SET`` clause and kept (e.g. ``client_ip = NULL``).

    ``condition`` narrows the rows (``published_at IS NOT NULL``); with ``blank`` it must also
    exclude rows already blanked, so each batch makes progress. SQL fragments are code, never
    input.
    """

    name: str
    table: str
    age_column: str
    keep: timedelta
    condition: str = "TRUE"
    blank: str | None = None

    def statement(self) -> str:
        table = ".".join(check_identifier(part) for part in self.table.split("."))
        column = check_identifier(self.age_column)
        chosen = (
            f"SELECT ctid FROM {table} WHERE {column} < now() - $1::interval "  # noqa: S608
            f"AND ({self.condition}) LIMIT $2"
        )
        if self.blank is None:
            return f"DELETE FROM {table} WHERE ctid = ANY(ARRAY({chosen}))"  # noqa: S608
        return f"UPDATE {table} SET {self.blank} WHERE ctid = ANY(ARRAY({chosen}))"  # noqa: S608


@dataclass(frozen=True)
class Applied:
    """What one rule did in one run: rows deleted or blanked, and whether rows past the age are
    left because the run stopped at its batch limit."""

    rule: Rule
    rows: int
    more: bool


async def apply_rules(
    pool: asyncpg.Pool,
    rules: Sequence[Rule],
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> list[Applied]:
    """Apply every rule once, in batches of ``batch_size`` rows, at most ``max_batches`` each."""
    applied: list[Applied] = []
    for rule in rules:
        sql = rule.statement()
        total, more = 0, True
        for _ in range(max_batches):
            status = await pool.execute(sql, rule.keep, batch_size)
            count = int(status.split()[-1])
            total += count
            if count < batch_size:
                more = False
                break
        applied.append(Applied(rule, total, more))
    return applied


async def sweep(
    pool: asyncpg.Pool,
    rules: Sequence[Rule],
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> dict[str, int]:
    """Apply every rule once, in batches; rows affected per rule."""
    applied = await apply_rules(pool, rules, batch_size=batch_size, max_batches=max_batches)
    return {a.rule.name: a.rows for a in applied}


class RetentionTask:
    """Background task: :func:`sweep` every ``interval_s`` until stopped (errors are logged,
    the next sweep tries again)."""

    def __init__(self, pool: asyncpg.Pool, rules: Sequence[Rule], *, interval_s: float) -> None:
        self._pool = pool
        self._rules = tuple(rules)
        self._interval_s = interval_s

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await sweep(self._pool, self._rules)
                if any(done.values()):
                    log.info("retention sweep", **{k: v for k, v in done.items() if v})
            except Exception as exc:
                log.warning("retention sweep failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)


RETENTION_SERVICE = pb.DESCRIPTOR.services_by_name["RetentionService"]
#: The methods to grant the operator on every server that serves :class:`RetentionServicer`.
RETENTION_RPCS = rpcs(RETENTION_SERVICE)
#: The database errors a run answers with UNAVAILABLE (try again later), not INTERNAL.
_UNAVAILABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class RetentionServicer(pb_grpc.RetentionServiceServicer):
    """``RunRetention``: the service's rules once, on the operator's demand."""

    def __init__(
        self, service: str, pool: asyncpg.Pool, rules: Sequence[Rule], **limits: int
    ) -> None:
        self._service = service
        self._pool = pool
        self._rules = tuple(rules)
        self._limits = limits

    async def RunRetention(
        self, request: pb.RunRetentionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RunRetentionResponse:
        try:
            applied = await apply_rules(self._pool, self._rules, **self._limits)
        except _UNAVAILABLE as exc:
            log.warning("retention run failed", error=repr(exc))
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"retention run failed: {type(exc).__name__}"
            )
        log.info("retention run on request", **{a.rule.name: a.rows for a in applied})
        response = pb.RunRetentionResponse(service=self._service)
        for a in applied:
            result = response.rules.add(
                rule=a.rule.name,
                table=a.rule.table,
                action=pb.RETENTION_ACTION_DELETE
                if a.rule.blank is None
                else pb.RETENTION_ACTION_BLANK,
                rows=a.rows,
                more=a.more,
            )
            result.keep.FromTimedelta(a.rule.keep)
        return response


def retention_service(
    service: str, pool: asyncpg.Pool, rules: Sequence[Rule]
) -> tuple[str, Callable[[grpc.aio.Server], None]]:
    """``(name, registration)`` for ``Wiring.grpc_services``: RetentionService over ``rules``."""
    servicer = RetentionServicer(service, pool, rules)
    return RETENTION_SERVICE.full_name, partial(
        pb_grpc.add_RetentionServiceServicer_to_server, servicer
    )
