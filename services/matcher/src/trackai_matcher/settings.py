"""Settings of the matcher service: the kit's blocks plus its own ``MATCHER_*`` knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("matcher")

    service_name: str = "matcher"
    #: Where the tenant registry's GetTenantView is served (pixel, test code, funnel look-back).
    provisioner_target: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
    #: Look-back of the deterministic e-mail/phone stage when the funnel sets none, in days.
    default_lookback_days: int = Field(30, ge=1, le=365)
    #: Stage 3: sessions active this many hours before the purchase are candidates.
    probabilistic_window_hours: int = Field(72, ge=1, le=24 * 14)
    #: Stage 3 accepts a match when the posterior probability reaches this (docs/matching.md).
    probabilistic_threshold: float = Field(0.97, gt=0.5, lt=1.0)
    #: Event for a pending pix/boleto ("" = none until paid), until funnels carry their own.
    pending_payment_event: Literal["", "InitiateCheckout", "AddPaymentInfo"] = ""
    #: Processed message ids are kept this many days (longer than any redelivery).
    inbox_retention_days: int = Field(7, ge=1)
    #: Published outbox rows (the DispatchRequests already on the broker) are kept this many days.
    outbox_retention_days: int = Field(7, ge=1)
    #: Sessions (clicks) unseen for this many days are deleted; keep it above every funnel's
    #: look-back, or older clicks can no longer be matched.
    click_retention_days: int = Field(180, ge=1)
    #: Raw IP and user agent of sessions unseen for this many days are blanked (LGPD); longer
    #: than the probabilistic window, which is the only stage that reads them.
    raw_network_retention_days: int = Field(30, ge=15)

    @model_validator(mode="after")
    def _retention_outlives_matching(self) -> Settings:
        if self.click_retention_days <= self.default_lookback_days:
            raise ValueError(
                "MATCHER_CLICK_RETENTION_DAYS must exceed MATCHER_DEFAULT_LOOKBACK_DAYS: sessions "
                "would be deleted while a purchase may still match them"
            )
        if self.raw_network_retention_days * 24 <= self.probabilistic_window_hours:
            raise ValueError(
                "MATCHER_RAW_NETWORK_RETENTION_DAYS must exceed the probabilistic window "
                "(MATCHER_PROBABILISTIC_WINDOW_HOURS)"
            )
        return self
