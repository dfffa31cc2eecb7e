"""The provisioner's allow-list on a real grpc.aio server: each caller reaches only its methods,
and only ingestion (one tenant's webhook secrets) and the dispatcher (one destination's token)
ever receive a secret."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai_kit.grpc import IDENTITIES, rpc
from trackai_provisioner.entrypoints.grpc_access import POLICY

pytestmark = pytest.mark.integration

_REGISTRY = pb.DESCRIPTOR.services_by_name["TenantRegistryService"]
SECRETS = ("kiwi-secret-9ch0bpzogu9", "relay-hmac-key-123", "EAAB-default-token", "EAAB-funnel")


async def _tenant_with_secrets(stub: Any) -> str:
    tenant = (await stub.CreateTenant(pb.CreateTenantRequest(name="Acme", slug="acme"))).tenant
    await stub.CreateFunnel(pb.CreateFunnelRequest(tenant_ref="acme", name="Curso", slug="curso"))
    await stub.SetGatewayCredential(
        pb.SetGatewayCredentialRequest(
            tenant_ref="acme",
            gateway="kiwify",
            secret=SECRETS[0],
            signing_secret=SECRETS[1],
        )
    )
    await stub.SetMetaCredential(
        pb.SetMetaCredentialRequest(
            tenant_ref="acme", pixel_id="1234567890", access_token=SECRETS[2]
        )
    )
    await stub.SetMetaCredential(
        pb.SetMetaCredentialRequest(
            tenant_ref="acme", funnel_slug="curso", pixel_id="99999999", access_token=SECRETS[3]
        )
    )
    return str(tenant.id)


async def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_the_matchers_view_holds_no_secret(provisioner: Any) -> None:
    await _tenant_with_secrets(provisioner.stub)
    view = (
        await provisioner.as_("matcher").GetTenantView(pb.GetTenantViewRequest(tenant_ref="acme"))
    ).view
    assert view.meta.pixel_id == "1234567890" and view.funnels[0].meta.pixel_id == "99999999"
    wire = view.SerializeToString()
    assert not [s for s in SECRETS if s.encode() in wire]


def _field_names(message: Descriptor, seen: set[str] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    names: set[str] = set()
    if message.full_name in seen:
        return names
    seen.add(message.full_name)
    for field in message.fields:
        names.add(field.name)
        if field.message_type is not None:
            names |= _field_names(field.message_type, seen)
    return names


def test_the_tenant_view_type_has_no_field_for_a_secret() -> None:
    names = _field_names(pb.TenantView.DESCRIPTOR)
    assert not {n for n in names if "secret" in n or "token" in n}


async def test_callers_outside_their_allow_list_are_denied(provisioner: Any) -> None:
    await _tenant_with_secrets(provisioner.stub)
    webhook = pb.GetWebhookConfigRequest(tenant_ref="acme")
    matcher, ingestion = provisioner.as_("matcher"), provisioner.as_("ingestion")
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert await _code(matcher.GetWebhookConfig(webhook)) == denied
    assert (
        await _code(matcher.GetMetaDestination(pb.GetMetaDestinationRequest(tenant_ref="acme")))
        == denied
    )
    # Ingestion serves one tenant per call: it can neither list tenants nor write anything.
    assert await _code(ingestion.ListTenants(pb.ListTenantsRequest())) == denied
    assert (
        await _code(
            ingestion.SetGatewayCredential(
                pb.SetGatewayCredentialRequest(tenant_ref="acme", gateway="kiwify", secret="x" * 12)
            )
        )
        == denied
    )
    # People's tools administer tenants but never read a secret back.
    assert await _code(provisioner.stub.GetWebhookConfig(webhook)) == denied
    assert await _code(provisioner.as_("console").GetWebhookConfig(webhook)) == denied
    assert await _code(provisioner.as_("dispatcher").GetWebhookConfig(webhook)) == denied


async def test_unknown_tokens_are_unauthenticated(provisioner: Any) -> None:
    from trackai_kit.grpc import client_channel

    async with client_channel(f"127.0.0.1:{provisioner.port}", "stolen-guess") as channel:
        from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc

        stub = pb_grpc.TenantRegistryServiceStub(channel)
        code = await _code(stub.GetTenantView(pb.GetTenantViewRequest(tenant_ref="acme")))
    assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("method", "holders"),
    [("GetWebhookConfig", {"ingestion"}), ("GetMetaDestination", {"dispatcher", "agent"})],
)
def test_each_secret_view_is_granted_only_to_the_services_that_use_it(
    method: str, holders: set[str]
) -> None:
    """Ingestion verifies webhooks; the dispatcher sends with a destination's token and the agent
    debugs it (validate_meta_token)."""
    full = rpc(_REGISTRY, method)
    assert {i for i in IDENTITIES if POLICY.allows(i, full)} == holders


async def test_the_console_sees_credentials_masked_to_their_last_4_characters(
    provisioner: Any,
) -> None:
    await _tenant_with_secrets(provisioner.stub)
    await provisioner.stub.SetGatewayCredential(
        pb.SetGatewayCredentialRequest(tenant_ref="acme", gateway="hotmart", secret="short-hot")
    )
    masked = await provisioner.as_("console").GetMaskedCredentials(
        pb.GetMaskedCredentialsRequest(tenant_ref="acme")
    )
    gateways = {g.gateway: g for g in masked.gateways}
    assert (gateways["kiwify"].secret_last4, gateways["kiwify"].signing_secret_last4) == (
        "ogu9",
        "-123",
    )
    # Too short for 4 characters to be a small share of it: nothing shown.
    assert gateways["hotmart"].secret_last4 == "" and not gateways["hotmart"].has_signing_secret
    tokens = {
        (m.funnel_id != "", m.pixel_id, m.access_token_last4) for m in masked.meta_destinations
    }
    assert tokens == {(False, "1234567890", "oken"), (True, "99999999", "")}
    wire = masked.SerializeToString()
    assert not [s for s in (*SECRETS, "short-hot") if s.encode() in wire]
