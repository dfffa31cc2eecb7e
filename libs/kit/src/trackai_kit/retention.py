"""Data retention (LGPD: keep personal data no longer than its purpose needs): rules that delete
old rows, or blank their raw network data, in small batches so a sweep never holds long locks.

Each service lists its rules (tables, ages from its settings) and runs :class:`RetentionTask` in
a long-running process; the rules are documented in docs/schema and docs/runbooks/retention.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

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


async def sweep(
    pool: asyncpg.Pool,
    rules: Sequence[Rule],
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> dict[str, int]:
    """Apply every rule once, in batches; rows affected per rule."""
    done: dict[str, int] = {}
    for rule in rules:
        sql = rule.statement()
        total = 0
        for _ in range(max_batches):
            status = await pool.execute(sql, rule.keep, batch_size)
            count = int(status.split()[-1])
            total += count
            if count < batch_size:
                break
        done[rule.name] = total
    return done


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
