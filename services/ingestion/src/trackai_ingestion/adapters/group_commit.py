"""Group commit, shared by the webhook store and the hit store: requests that arrive while
statements are in flight wait in a queue and are written together by the next statement (at most
``max_in_flight`` at once), so under load one round trip and one WAL flush serve many callers;
alone, a request is written at once. Each caller still returns only after its own row is
committed (its future is resolved by the writer)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeVar

import asyncpg


class Pending(Protocol):
    """One caller's request: its statement row and the future its writer resolves."""

    @property
    def row(self) -> list[Any]: ...

    @property
    def done(self) -> asyncio.Future[Any]: ...


P = TypeVar("P", bound=Pending)


class GroupCommit(Generic[P]):
    """The queue and its writers; subclasses choose a batch and read the statement's answer."""

    def __init__(
        self, pool: asyncpg.Pool, *, acquire_timeout_s: float | None, max_in_flight: int
    ) -> None:
        self._pool = pool
        #: Bounds the wait for a connection when the pool is exhausted: the caller answers 503
        #: with Retry-After (a TimeoutError) instead of queueing without end.
        self._acquire_timeout_s = acquire_timeout_s
        self._max_in_flight = max_in_flight
        self._pending: deque[P] = deque()
        self._writers: set[asyncio.Task[None]] = set()
        #: Writers still able to take a batch. Counted down by the writer itself, in the same step
        #: in which it finds the queue empty: ``_writers`` keeps a finished task until its
        #: done-callback runs a loop turn later, and a request submitted in between, seeing every
        #: slot taken, started no writer and waited for the next request (forever, at the end
        #: of a load).
        self._active = 0

    def _submit(self, pending: P) -> None:
        self._pending.append(pending)
        if self._active < self._max_in_flight:
            self._active += 1
            writer = asyncio.create_task(self._write_pending())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)

    async def _write_pending(self) -> None:
        try:
            while batch := self._take_batch():
                await self._write(batch)
        finally:
            self._active -= 1

    def _take_batch(self) -> list[P]:
        raise NotImplementedError

    async def _write(self, batch: list[P]) -> None:
        raise NotImplementedError

    async def _fetch(self, sql: str, batch: list[P]) -> list[asyncpg.Record] | None:
        """``sql`` over the batch's column arrays; None when the batch was settled otherwise:
        failed (each caller sees the error), or written again one by one so that one row the
        database refuses does not fail the others."""
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
                rows: list[asyncpg.Record] = await conn.fetch(sql, *columns(p.row for p in batch))
        except asyncpg.PostgresError as exc:
            # The server is unreachable or shutting down: every row fails alike, no bisecting.
            if len(batch) == 1 or isinstance(
                exc, asyncpg.PostgresConnectionError | asyncpg.OperatorInterventionError
            ):
                fail(batch, exc)
                return None
            for pending in batch:
                await self._write([pending])
            return None
        except Exception as exc:  # e.g. the connection is gone: each caller answers 503
            fail(batch, exc)
            return None
        except BaseException as exc:
            fail(batch, exc)
            raise
        return rows


def columns(rows: Iterable[list[Any]]) -> list[list[Any]]:
    """Rows to the column arrays a statement unnests."""
    return [list(column) for column in zip(*rows, strict=True)]


def fail(batch: Iterable[Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(exc)
