"""Which Meta event (if any) an order status produces, per funnel.

Approved (and completed) orders become ``Purchase``; a pending pix or boleto may become
``InitiateCheckout`` or ``AddPaymentInfo`` when the funnel asks for it (off by default); refunds,
chargebacks and the other terminal statuses are recorded and never produce a second Purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

PURCHASE = "Purchase"
PENDING_EVENTS = ("InitiateCheckout", "AddPaymentInfo")
#: Statuses of an order that is (or is about to be) a sale: worth matching to a click.
SALE_STATUSES = frozenset({"approved", "completed", "pending_payment"})
_DELAYED_METHODS = frozenset({"pix", "boleto"})


class PolicyError(ValueError):
    """A status mapping that cannot be configured."""


@dataclass(frozen=True)
class StatusPolicy:
    """A funnel's status mapping."""

    approved_event: str = PURCHASE
    #: Event for a pending pix/boleto; None keeps them silent until paid.
    pending_event: str | None = None

    def __post_init__(self) -> None:
        if self.pending_event is not None and self.pending_event not in PENDING_EVENTS:
            raise PolicyError(
                f"pending_event must be one of {', '.join(PENDING_EVENTS)} or empty, "
                f"got {self.pending_event!r}"
            )

    def event_for(self, status: str, payment_method: str) -> tuple[str | None, str]:
        """(event name or None, reason): the reason says why nothing is sent."""
        if status in ("approved", "completed"):
            return self.approved_event, "sale"
        if status == "pending_payment":
            if payment_method not in _DELAYED_METHODS:
                return None, "pending payment (not pix/boleto)"
            if self.pending_event is None:
                return None, f"pending {payment_method}: funnel sends no pending event"
            return self.pending_event, f"pending {payment_method}"
        if status in ("refunded", "chargeback"):
            return None, f"{status}: recorded, the Purchase is never sent again"
        return None, f"status {status or 'unknown'} produces no event"
