"""Load for the restart scenarios: sales posted continuously while a server goes away."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from .accounting import Account
from .conftest import Pipeline


@dataclass
class Traffic:
    """Sales posted continuously (about ``rate`` a second) from a thread, answers tallied."""

    pipeline: Pipeline
    rate: float = 4.0
    answers: list[int] = field(default_factory=list)
    #: Exceptions a POST raised (its answer is recorded as 0).
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        run = uuid.uuid4().hex[:6]
        with httpx.Client(timeout=30) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    answer = self.pipeline.post(http, self.pipeline.sale(f"load-{run}-{n}"))
                    self.answers.append(answer.status_code)
                except Exception as exc:  # a dead sender would stall the scenario: record it
                    self.answers.append(0)
                    self.errors.append(repr(exc))
                time.sleep(1 / self.rate)

    def acked(self) -> int:
        return self.answers.count(200)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def wait(what: str, check: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.2)


def all_sent(pipeline: Pipeline) -> Callable[[Account], bool]:
    def done(account: Account) -> bool:
        return account.settled and len(account.delivered) + len(account.dead) + len(
            account.duplicated
        ) == len(pipeline.ledger.acknowledged)

    return done


def delivered(pipeline: Pipeline) -> int:
    return len(pipeline.ledger.account(pipeline.meta).delivered)
