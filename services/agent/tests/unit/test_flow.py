"""The guided flow's rules: what each step allows, and when failures escalate."""

from __future__ import annotations

from trackai_agent.domain import flow


def test_only_reached_steps_are_allowed() -> None:
    assert flow.allowed_tools("meta_token", webhook_verified=False) == ("validate_meta_token",)
    assert flow.allowed_tools("landing_url", webhook_verified=True) == (
        "validate_meta_token",
        "validate_gateway_webhook",
        "probe_landing_url",
    )


def test_nothing_past_the_webhook_while_it_is_not_verified() -> None:
    assert flow.allowed_tools("test_event", webhook_verified=False) == (
        "validate_meta_token",
        "validate_gateway_webhook",
    )
    assert "send_test_capi_event" in flow.allowed_tools("done", webhook_verified=True)


def test_three_consecutive_failures_escalate_and_a_success_resets() -> None:
    count = flow.FailureCount()
    for failed in (True, True, False, True, True):
        count = count.after(failed)
        assert not count.escalates
    assert count.after(True).escalates


def test_steps_advance_to_done() -> None:
    assert flow.next_step("meta_token") == "gateway_webhook"
    assert flow.next_step("test_event") == flow.DONE
