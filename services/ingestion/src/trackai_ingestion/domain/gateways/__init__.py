"""Checkout-gateway adapters by URL slug: one module per platform behind :class:`GatewayAdapter`."""

from __future__ import annotations

from collections.abc import Mapping

from trackai_ingestion.domain.gateways.base import (
    GatewayAdapter,
    WebhookRequest,
)
from trackai_ingestion.domain.gateways.braip import BraipAdapter
from trackai_ingestion.domain.gateways.cakto import CaktoAdapter
from trackai_ingestion.domain.gateways.eduzz import EduzzAdapter
from trackai_ingestion.domain.gateways.greenn import GreennAdapter
from trackai_ingestion.domain.gateways.hotmart import HotmartAdapter
from trackai_ingestion.domain.gateways.kiwify import KiwifyAdapter
from trackai_ingestion.domain.gateways.monetizze import MonetizzeAdapter
from trackai_ingestion.domain.gateways.perfectpay import PerfectPayAdapter
from trackai_ingestion.domain.gateways.ticto import TictoAdapter

ADAPTERS: Mapping[str, GatewayAdapter] = {
    adapter.name: adapter
    for adapter in (
        KiwifyAdapter(),
        PerfectPayAdapter(),
        HotmartAdapter(),
        EduzzAdapter(),
        CaktoAdapter(),
        MonetizzeAdapter(),
        BraipAdapter(),
        TictoAdapter(),
        GreennAdapter(),
    )
}

__all__ = ["ADAPTERS", "GatewayAdapter", "WebhookRequest"]
