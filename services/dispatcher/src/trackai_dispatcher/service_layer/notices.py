"""Status notifications of a batch's committed states, published in the background: a batch's
messages are acked (and its worker freed) once its state is committed, not once the console was
told."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from trackai_dispatcher.domain.model import Destination, State
from trackai_dispatcher.service_layer.batch import Batch
from trackai_dispatcher.service_layer.ports import Notifier, StatusUpdate
from trackai_kit.logging import get_logger

log = get_logger(__name__)


class Notices:
    def __init__(self, notifier: Notifier, clock: Callable[[], datetime]) -> None:
        self._notifier = notifier
        self._clock = clock
        self._notifying: set[asyncio.Task[None]] = set()

    def notify(self, batch: Batch) -> None:
        """Publish the states ``batch`` committed so far (in the background), and forget them."""
        if not batch.statuses:
            return
        for event_id, state, reason in batch.statuses:
            if state is State.DEAD:
                # Committed: the sale will not reach Meta unless someone replays it (Sentry).
                log.error("conversion dead; it will not reach Meta", event_id=event_id,
                          tenant_id=batch.destination.tenant_id, reason=reason)  # fmt: skip
        task = asyncio.create_task(self._publish(batch.destination, batch.statuses))
        batch.statuses = []
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def flush(self) -> None:
        """Wait for the status updates still being published (shutdown)."""
        if self._notifying:
            await asyncio.wait(set(self._notifying))

    async def _publish(
        self, destination: Destination, statuses: list[tuple[str, State, str]]
    ) -> None:
        now = self._clock()
        updates = [
            StatusUpdate(destination.tenant_id, event_id, state.value, detail, now)
            for event_id, state, detail in statuses
        ]
        try:
            await self._notifier.statuses(updates)
        except Exception:
            # A notification: the state is committed and readable through the gRPC API.
            log.warning("status updates not published", count=len(updates), exc_info=True)
