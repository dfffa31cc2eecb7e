"""Rolling back a run whose CNAME exists: DNS goes first, deletes are retried, and a CNAME that
cannot be deleted keeps its Stape target alive and is reported as a pending cleanup."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai_provisioner.domain.provisioning import RunStatus, StepStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _no_wait(_: float) -> None:
    return None


async def _provision_then_roll_back(prov: Any) -> Any:
    messages = await prov.provision()
    assert messages[-1].run_status == pb.RUN_STATUS_AWAITING_APPROVAL
    prov.saga._sleep = _no_wait

    async def report(
        step: str,
        status: StepStatus,
        detail: str,
        write: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if write is not None:
            await write()

    run_id = uuid.UUID(messages[-1].run_id)
    async with prov.pool.acquire() as conn:
        run = await prov.saga._repo.get_run(conn, run_id)
        await prov.saga._rollback(conn, run, "operator test", report)
        return await prov.saga._repo.get_run(conn, run_id)


def _fail_dns_deletes(sandboxes: Any, count: int) -> None:
    sandboxes.control(
        sandboxes.cloudflare,
        "POST",
        "/_sandbox/faults",
        json={"kind": "http_500", "method": "DELETE", "path": "/dns_records", "count": count},
    )


async def test_a_cname_that_cannot_be_deleted_keeps_its_target_and_is_reported(
    provisioning: Any, sandboxes: Any
) -> None:
    async with provisioning() as prov:
        _fail_dns_deletes(sandboxes, 100)
        run = await _provision_then_roll_back(prov)
    assert run.status == RunStatus.ROLLED_BACK
    assert "PENDING CLEANUP, delete by hand (the CNAME first): Cloudflare CNAME" in run.error
    assert "(kept: the CNAME still points at it)" in run.error
    assert "PENDING CLEANUP: Cloudflare CNAME" in run.steps["cloudflare_cname"].detail
    # The CNAME stays, and so does the Stape container it points at: it never dangles.
    assert len(sandboxes.cname_records()) == 1
    assert len(sandboxes.stape_containers()) == 1
    assert sandboxes.gtm_containers() == []  # what nothing points at is removed


async def test_a_transient_dns_failure_is_retried_and_everything_goes(
    provisioning: Any, sandboxes: Any
) -> None:
    async with provisioning() as prov:
        # One more failure than the Cloudflare client's own retries: the saga's retry succeeds.
        _fail_dns_deletes(sandboxes, 3)
        run = await _provision_then_roll_back(prov)
    assert run.status == RunStatus.ROLLED_BACK
    assert "PENDING CLEANUP" not in (run.error or "")
    assert sandboxes.cname_records() == []
    assert sandboxes.stape_containers() == []
    assert sandboxes.gtm_containers() == []
