"""UpdateTenant and UpdateFunnel over real gRPC and PostgreSQL: the update mask decides what
changes, a named field with its zero value resets it, and the per-funnel pending-payment event
reaches GetTenantView."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from trackai.provisioner.v1 import provisioner_service_pb2 as pb

pytestmark = pytest.mark.integration


async def _tenant_and_funnel(stub: Any) -> pb.Funnel:
    await stub.CreateTenant(
        pb.CreateTenantRequest(
            name="Loja", slug="acme", rate_limit_per_minute=50, allowed_domains=["a.example.com"]
        )
    )
    created = await stub.CreateFunnel(
        pb.CreateFunnelRequest(
            tenant_ref="acme",
            name="Curso",
            slug="curso",
            lookback_days=7,
            landing_url="https://a.example.com/",
            checkout_domains=["pay.kiwify.com.br"],
            test_event_code="TEST1",
            pending_payment_event="InitiateCheckout",
        )
    )
    return created.funnel


async def test_update_tenant_changes_only_the_masked_fields(provisioner: Any) -> None:
    stub = provisioner.stub
    await _tenant_and_funnel(stub)
    raised = await stub.UpdateTenant(
        pb.UpdateTenantRequest(
            tenant_ref="acme",
            rate_limit_per_minute=5000,
            name="ignored: not in the mask",
            update_mask=FieldMask(paths=["rate_limit_per_minute"]),
        )
    )
    assert raised.tenant.rate_limit_per_minute == 5000 and not raised.tenant.rate_limit_default
    assert raised.tenant.name == "Loja"
    assert list(raised.tenant.allowed_domains) == ["a.example.com"]

    reset = await stub.UpdateTenant(
        pb.UpdateTenantRequest(
            tenant_ref="acme",
            name="Loja Nova",
            update_mask=FieldMask(paths=["name", "rate_limit_per_minute", "allowed_domains"]),
        )
    )
    assert reset.tenant.name == "Loja Nova"
    assert reset.tenant.rate_limit_per_minute == 100 and reset.tenant.rate_limit_default
    assert list(reset.tenant.allowed_domains) == []
    view = (await stub.GetTenantView(pb.GetTenantViewRequest(tenant_ref="acme"))).view
    assert view.tenant == reset.tenant


@pytest.mark.parametrize(
    ("paths", "values", "message"),
    [
        ([], {}, "update_mask: name at least one field"),
        (["slug"], {}, "update_mask: cannot update slug"),
        (["tenant_ref"], {}, "update_mask: cannot update tenant_ref"),
        (["rate_limit_per_minute"], {"rate_limit_per_minute": -1}, "rate_limit_per_minute:"),
        (["allowed_domains"], {"allowed_domains": ["not a host"]}, "allowed_domains:"),
    ],
)
async def test_update_tenant_refusals_name_the_field(
    provisioner: Any, paths: list[str], values: dict[str, Any], message: str
) -> None:
    await _tenant_and_funnel(provisioner.stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await provisioner.stub.UpdateTenant(
            pb.UpdateTenantRequest(tenant_ref="acme", update_mask=FieldMask(paths=paths), **values)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(message)


async def test_update_funnel_and_the_pending_payment_event(provisioner: Any) -> None:
    stub = provisioner.stub
    created = await _tenant_and_funnel(stub)
    assert created.pending_payment_event == "InitiateCheckout"

    changed = await stub.UpdateFunnel(
        pb.UpdateFunnelRequest(
            tenant_ref="acme",
            funnel_slug="curso",
            pending_payment_event="AddPaymentInfo",
            checkout_domains=["pay.hotmart.com", "Pay.Hotmart.com"],
            update_mask=FieldMask(paths=["pending_payment_event", "checkout_domains"]),
        )
    )
    funnel = changed.funnel
    assert funnel.pending_payment_event == "AddPaymentInfo"
    assert list(funnel.checkout_domains) == ["pay.hotmart.com"]
    assert (funnel.name, funnel.lookback_days, funnel.test_event_code) == ("Curso", 7, "TEST1")
    view = (await stub.GetTenantView(pb.GetTenantViewRequest(tenant_ref="acme"))).view
    assert view.funnels[0].funnel.pending_payment_event == "AddPaymentInfo"

    reset = await stub.UpdateFunnel(
        pb.UpdateFunnelRequest(
            tenant_ref="acme",
            funnel_slug="curso",
            update_mask=FieldMask(
                paths=["pending_payment_event", "lookback_days", "landing_url", "test_event_code"]
            ),
        )
    )
    assert reset.funnel.pending_payment_event == ""
    assert (reset.funnel.lookback_days, reset.funnel.landing_url) == (30, "")
    assert reset.funnel.test_event_code == ""
    # An empty pending event removes the key instead of storing "".
    stored = await provisioner.pool.fetchval(
        "SELECT status_mapping FROM provisioner.funnels WHERE id = $1::uuid", created.id
    )
    assert stored == {}

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateFunnel(
            pb.UpdateFunnelRequest(
                tenant_ref="acme",
                funnel_slug="curso",
                pending_payment_event="Purchase",
                update_mask=FieldMask(paths=["pending_payment_event"]),
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("pending_payment_event:")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateFunnel(
            pb.UpdateFunnelRequest(
                tenant_ref="acme",
                funnel_slug="nope",
                name="x",
                update_mask=FieldMask(paths=["name"]),
            )
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_status_mapping_keeps_other_keys(provisioner: Any) -> None:
    created = await _tenant_and_funnel(provisioner.stub)
    await provisioner.pool.execute(
        'UPDATE provisioner.funnels SET status_mapping = status_mapping || \'{"refunded": "x"}\''
        " WHERE id = $1::uuid",
        created.id,
    )
    await provisioner.stub.UpdateFunnel(
        pb.UpdateFunnelRequest(
            tenant_ref="acme",
            funnel_slug="curso",
            update_mask=FieldMask(paths=["pending_payment_event"]),
        )
    )
    stored = await provisioner.pool.fetchval(
        "SELECT status_mapping FROM provisioner.funnels WHERE id = $1::uuid", created.id
    )
    assert stored == {"refunded": "x"}
