"""`trackai provision` as an operator runs it: a separate process streaming the saga's progress,
exiting 0 on success and 1 when the run rolls back; `show --snippet` prints the stored snippet."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import run_cli as _cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_provision_streams_progress_and_prints_the_result(provisioning: Any) -> None:
    async with provisioning() as prov:
        code, out, err = await _cli(prov.port, "provision", "acme")
        assert code == 0, err
        assert "cloudflare_cname" in out and "succeeded" in out
        assert "tagging server   https://acme.track.trackai.test" in out
        run_id = out.split("trackai provision test-event ", 1)[1].split()[0]
        code, snippet, err = await _cli(
            prov.port, "provision", "show", run_id, "--snippet", "kiwify_thank_you"
        )
        assert code == 0, err
        assert 'data-gateway="kiwify"' in snippet
        code, _, err = await _cli(prov.port, "provision", "approve", run_id, "--by", "ana")
        assert code == 1
        assert "FAILED_PRECONDITION" in err and "test event" in err


async def test_provision_exits_non_zero_when_the_run_rolls_back(
    provisioning: Any, sandboxes: Any
) -> None:
    sandboxes.control(sandboxes.stape, "POST", "/_sandbox/behaviour", json={"never_running": True})
    async with provisioning(PROVISIONING_STAPE_TIMEOUT_S=1) as prov:
        code, out, err = await _cli(prov.port, "provision", "acme", "--funnel", "launch")
    assert code == 1
    assert "rolled_back" in out
    assert "provisioning rolled_back" in err and "Rolled back:" in err
