"""The guided setup flow: its steps in order, which tools each step allows, and the rule that
hands a session to a human after consecutive failures.

The state machine, not the model, decides which tools exist at each step: whatever a page or a
tool result says, the model can only call what this module allows for the session's step.
"""

from __future__ import annotations

from dataclasses import dataclass

ESCALATE_AFTER = 3

#: (step, tool run by the guided flow for that step), in order.
STEPS: tuple[tuple[str, str], ...] = (
    ("meta_token", "validate_meta_token"),
    ("gateway_webhook", "validate_gateway_webhook"),
    ("landing_url", "probe_landing_url"),
    ("tracking_snippet", "generate_tracking_snippet"),
    ("pixel_presence", "check_pixel_presence"),
    ("test_event", "send_test_capi_event"),
)
DONE = "done"
TOOL_NAMES = tuple(tool for _, tool in STEPS)
STEP_TITLES = {
    "meta_token": "token do Meta",
    "gateway_webhook": "webhook do checkout",
    "landing_url": "página de vendas",
    "tracking_snippet": "código de rastreamento",
    "pixel_presence": "pixel na página",
    "test_event": "evento de teste",
    DONE: "concluída",
}


def step_index(step: str) -> int:
    names = [name for name, _ in STEPS]
    return names.index(step) if step in names else len(STEPS)


def tool_of(step: str) -> str | None:
    return dict(STEPS).get(step)


def allowed_tools(step: str, *, webhook_verified: bool) -> tuple[str, ...]:
    """Tools callable at ``step``: every step reached so far (re-checks are fine), never a later
    one; nothing past the webhook while no verified webhook arrived (it blocks setup)."""
    reached = STEPS[: step_index(step) + 1]
    tools = tuple(tool for name, tool in reached)
    if not webhook_verified:
        gate = step_index("gateway_webhook")
        tools = tuple(tool for _, tool in STEPS[: gate + 1] if tool in tools)
    return tools


def next_step(step: str) -> str:
    index = step_index(step)
    return STEPS[index + 1][0] if index + 1 < len(STEPS) else DONE


@dataclass(frozen=True)
class FailureCount:
    """Consecutive failures of a session: a success resets, the third failure escalates."""

    consecutive: int = 0

    def after(self, failed: bool) -> FailureCount:
        return FailureCount(self.consecutive + 1 if failed else 0)

    @property
    def escalates(self) -> bool:
        return self.consecutive >= ESCALATE_AFTER
