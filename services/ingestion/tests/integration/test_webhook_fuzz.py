"""Property: no webhook input, however malformed, gets a 5xx or raises anything unhandled.

Every real payload in ``tests/fixtures/gateways`` whose gateway has an adapter (so a gateway added
later joins as soon as it is registered) is mutated at one place at a time — null, wrong types,
huge strings, NUL, lone surrogates, NaN/Infinity/1e999, 5,000-digit integers, depth-2000 nesting,
impossible dates, duplicated keys, odd keys — and sent correctly authenticated to the real app
over real HTTP (uvicorn) with real PostgreSQL behind it. Every answer must be below 500, JSON, and
nothing may be half-stored.

Budget: ``make test`` runs a fixed, derandomised sample (:data:`EXAMPLES` per fixture);
``make fuzz`` sets ``TRACKAI_FUZZ_EXAMPLES`` for a long random run (docs/runbooks/webhooks.md).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trackai_ingestion.domain.gateways import ADAPTERS

from ..conftest import FIXTURES
from .conftest import App, AppFactory, credentials

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES = int(os.environ.get("TRACKAI_FUZZ_EXAMPLES", "0"))
#: Stands for the mutated value (or key) in the serialised fixture, replaced by raw JSON text.
MARK = "\u2603mutation\u2603"
NEST = 2000

#: The real payloads of every gateway that has an adapter; the others wait for theirs.
FUZZED = [
    path for path in sorted(FIXTURES.glob("*.json")) if path.name.split("-", 1)[0] in ADAPTERS
]
#: Examples in all: a small, fixed sample in `make test`, a large random one in `make fuzz`.
EXAMPLES = FUZZ_EXAMPLES or 20 * len(FUZZED)
#: Raw JSON text put in place of one value.
VALUES = [
    # null and wrong types
    "null", '""', '"x"', "0", "-1", "true", "false", "{}", "[]", "[null]", '{"a": 1}',
    # huge strings
    json.dumps("A" * 60_000), json.dumps("9" * 5_000),
    # NUL and lone surrogates
    '"a\\u0000b"', '"\\u0000"', '"\\ud800"', '"x\\udfff"', '"\\udc00\\ud800"',
    # non-finite and huge numbers
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "9" * 5_000, "-" + "9" * 5_000,
    "1.0000000000000000000000000000000000000000001", "123456789012345678901234567890",
    # depth 2000
    "[" * NEST + "]" * NEST, '{"a": ' * NEST + "1" + "}" * NEST,
    # impossible dates, in every form the gateways use
    '"9999-12-31 23:59:59"', '"9999-12-31 23:59"', '"0000-00-00 00:00:00"',
    '"2024-02-30 10:00:00"', '"2024-13-01 00:00"', '"9999-12-31T23:59:59-03:00"',
    '"0001-01-01T00:00:00+14:00"', '"9999-12-31T23:59:59Z"', "253402300799999",
    "-62135596800000", "99999999999999999", '"1712345678000"',
]  # fmt: skip
#: Raw JSON text put in place of one key (the value is kept).
KEYS = ['"k\\u0000"', '"\\ud800"', '""', json.dumps("k" * 10_000)]


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*prefix, key)
        if isinstance(value, dict | list):
            yield from _paths(value, (*prefix, key))


def _mutated(body: dict[str, Any], path: tuple[str | int, ...], kind: str, raw: str) -> bytes:
    """``body`` with the value at ``path`` replaced by ``raw`` (kind ``value``), its key renamed to
    ``raw`` (``key``), or its key repeated with the value ``raw`` after it (``repeat``)."""
    copied = copy.deepcopy(body)
    parent: Any = copied
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if kind == "value" or isinstance(last, int):
        parent[last] = MARK
        return json.dumps(copied).replace(json.dumps(MARK), raw, 1).encode()
    items = list(parent.items())
    index = next(i for i, (key, _) in enumerate(items) if key == last)
    if kind == "key":
        items[index] = (MARK, items[index][1])
        replacement = raw
    else:
        items.insert(index + 1, (MARK, "placeholder"))
        replacement = f"{json.dumps(last)}: {raw}"
    parent.clear()
    parent.update(items)
    marked = json.dumps(MARK)
    text = json.dumps(copied)
    if kind == "repeat":
        marked = f'{marked}: "placeholder"'
    return text.replace(marked, replacement, 1).encode()


def _mutations(body: dict[str, Any]) -> st.SearchStrategy[tuple[tuple[str | int, ...], str, str]]:
    paths = sorted(_paths(body), key=repr)
    values = st.one_of(
        st.sampled_from(VALUES),
        st.text(max_size=30).map(json.dumps),
        st.integers().map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
    )
    return st.one_of(
        st.tuples(st.sampled_from(paths), st.just("value"), values),
        st.tuples(st.sampled_from(paths), st.just("key"), st.sampled_from(KEYS)),
        st.tuples(st.sampled_from(paths), st.just("repeat"), values),
    )


class _Unhandled(logging.Handler):
    """Collects what uvicorn and asyncio report as unhandled (an exception that escaped the app,
    a task whose exception nobody retrieved)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())


@pytest.fixture
async def unhandled() -> AsyncIterator[list[str]]:
    handler = _Unhandled()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: handler.seen.append(str(context)))
    for name in ("uvicorn.error", "asyncio"):
        logging.getLogger(name).addHandler(handler)
    try:
        yield handler.seen
    finally:
        loop.set_exception_handler(None)
        for name in ("uvicorn.error", "asyncio"):
            logging.getLogger(name).removeHandler(handler)


@pytest.fixture
async def served(make_app: AppFactory) -> App:
    return await make_app(real_http=True)


@pytest.fixture
async def pool(pg_pool: Any, database_url: str) -> asyncpg.Pool:
    return await pg_pool(database_url)


async def test_every_fuzzed_fixture_is_accepted_unmutated(served: App, tenant: str) -> None:
    """The mutations below really are authenticated: a new gateway must be given its credentials
    (conftest ``SECRETS`` and ``credentials``) to pass this."""
    assert len(FUZZED) >= len(ADAPTERS)
    for fixture in FUZZED:
        gateway = fixture.name.split("-", 1)[0]
        response = await _send(served, gateway, tenant, fixture.read_bytes())
        assert response.status_code == 200, f"{fixture.name}: {response.text}"


@settings(
    max_examples=EXAMPLES,
    derandomize=not FUZZ_EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(fixture=st.sampled_from(FUZZED), data=st.data())
async def test_no_mutation_of_a_real_payload_gets_a_5xx(
    served: App,
    tenant: str,
    pool: asyncpg.Pool,
    unhandled: list[str],
    fixture: Path,
    data: st.DataObject,
) -> None:
    unhandled.clear()  # the fixture lives across examples: report each one's own
    gateway = fixture.name.split("-", 1)[0]
    body = _bodies(fixture)
    path, kind, raw = data.draw(_mutations(body), label="mutation")
    where = f"{fixture.name}: {kind} at {path!r} = {raw[:60]!r}"
    before = await pool.fetchval("SELECT count(*) FROM ingestion.events")
    response = await _send(served, gateway, tenant, _mutated(body, path, kind, raw))
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
    answer = response.json()
    assert ("error" in answer) == (response.status_code >= 400), where
    # Nothing half-stored: a conversion is stored only when the answer says so.
    new = answer.get("status") == "accepted" and not answer["duplicate"]
    assert await pool.fetchval("SELECT count(*) FROM ingestion.events") == before + new, where
    assert unhandled == [], where


@lru_cache
def _bodies(fixture: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(fixture.read_bytes())
    return loaded


async def _send(app: App, gateway: str, tenant: str, raw: bytes) -> httpx.Response:
    auth = credentials(gateway, raw)
    return await app.client.post(
        f"/api/v1/webhooks/{gateway}/{tenant}",
        content=raw,
        headers={"Content-Type": "application/json", **auth.get("headers", {})},
        params=auth.get("params"),
    )
