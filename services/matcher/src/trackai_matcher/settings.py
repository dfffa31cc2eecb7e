"""Settings of the matcher service: the kit's blocks plus its own ``MATCHER_*`` knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trackai_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("matcher")

    service_name: str = "matcher"
    #: Where the tenant registry's GetTenantView is served (pixel, test code, funnel look-back).
    provisioner_grpc_target: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
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
