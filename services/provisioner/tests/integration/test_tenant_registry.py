"""The tenant registry over real gRPC and PostgreSQL: tenants, funnels, sealed credentials."""

from __future__ import annotations

import base64
import os

import grpc
import pytest

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_provisioner.bootstrap import build_registry

pytestmark = pytest.mark.integration


async def _create(stub, slug: str = "acme", **kw) -> pb.Tenant:
    resp = await stub.CreateTenant(pb.CreateTenantRequest(name=f"Loja {slug}", slug=slug, **kw))
    return resp.tenant


async def test_create_then_get_by_id_and_slug(provisioner) -> None:
    tenant = await _create(provisioner.stub, allowed_domains=["Loja.Example.com"])
    assert tenant.slug == "acme"
    assert tenant.rate_limit_per_minute == 100  # the service default when created with 0
    assert list(tenant.allowed_domains) == ["loja.example.com"]
    by_id = await provisioner.stub.GetTenant(pb.GetTenantRequest(id=tenant.id))
    by_slug = await provisioner.stub.GetTenant(pb.GetTenantRequest(slug="acme"))
    assert by_id.tenant == by_slug.tenant == tenant


async def test_duplicate_slug_is_already_exists(provisioner) -> None:
    await _create(provisioner.stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _create(provisioner.stub)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "acme" in (err.value.details() or "")


async def test_invalid_input_names_the_field(provisioner) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _create(provisioner.stub, slug="Not A Slug")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("slug:")


async def test_unknown_tenant_is_not_found(provisioner) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await provisioner.stub.GetTenant(pb.GetTenantRequest(slug="nobody"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_pages_in_creation_order(provisioner) -> None:
    slugs = [f"t{i}" for i in range(5)]
    for slug in slugs:
        await _create(provisioner.stub, slug)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await provisioner.stub.ListTenants(
            pb.ListTenantsRequest(page_size=2, page_token=token)
        )
        seen += [t.slug for t in page.tenants]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == slugs
    assert pages == 3


async def test_gateway_secret_is_sealed_at_rest_and_opened_for_internal_callers(
    provisioner,
) -> None:
    tenant = await _create(provisioner.stub)
    resp = await provisioner.stub.SetGatewayCredential(
        pb.SetGatewayCredentialRequest(
            tenant_ref="acme",
            gateway="kiwify",
            secret="kiwi-secret-9ch0bpzogu9",
            signing_secret="relay-hmac-key-123",
        )
    )
    assert list(resp.tenant.configured_gateways) == ["kiwify"]
    # Nothing in the table carries the plaintext.
    dump = await provisioner.pool.fetchval(
        "SELECT string_agg(encode(ciphertext, 'escape') || public::text, '|') FROM provisioner.credentials"
    )
    assert "kiwi-secret" not in dump and "relay-hmac" not in dump
    ingestion = provisioner.as_("ingestion")
    config = (
        await ingestion.GetWebhookConfig(pb.GetWebhookConfigRequest(tenant_ref=tenant.id))
    ).config
    assert config.view.tenant.id == tenant.id
    assert [(g.gateway, g.secret, g.signing_secret) for g in config.gateways] == [
        ("kiwify", "kiwi-secret-9ch0bpzogu9", "relay-hmac-key-123")
    ]
    # Replacing keeps one credential per gateway.
    await provisioner.stub.SetGatewayCredential(
        pb.SetGatewayCredentialRequest(tenant_ref="acme", gateway="kiwify", secret="second-secret")
    )
    config = (
        await ingestion.GetWebhookConfig(pb.GetWebhookConfigRequest(tenant_ref="acme"))
    ).config
    assert [(g.gateway, g.secret, g.signing_secret) for g in config.gateways] == [
        ("kiwify", "second-secret", "")
    ]


async def test_meta_destination_tenant_default_and_per_funnel(provisioner) -> None:
    await _create(provisioner.stub)
    await provisioner.stub.CreateFunnel(
        pb.CreateFunnelRequest(
            tenant_ref="acme", name="Curso", slug="curso", landing_url="https://loja.example.com/"
        )
    )
    resp = await provisioner.stub.SetMetaCredential(
        pb.SetMetaCredentialRequest(
            tenant_ref="acme", pixel_id="1234567890", access_token="EAAB-default-token"
        )
    )
    assert resp.tenant.meta_configured and not resp.HasField("funnel")
    resp = await provisioner.stub.SetMetaCredential(
        pb.SetMetaCredentialRequest(
            tenant_ref="acme",
            funnel_slug="curso",
            pixel_id="99999999",
            access_token="EAAB-funnel-token",
            test_event_code="TEST4242",
        )
    )
    assert resp.funnel.pixel_id == "99999999" and resp.funnel.meta_configured
    view = (
        await provisioner.as_("matcher").GetTenantView(pb.GetTenantViewRequest(tenant_ref="acme"))
    ).view
    assert view.meta.pixel_id == "1234567890"
    [funnel] = view.funnels
    assert funnel.funnel.lookback_days == 30
    assert (funnel.meta.pixel_id, funnel.meta.test_event_code) == ("99999999", "TEST4242")
    dispatcher = provisioner.as_("dispatcher")

    async def destination(funnel_id: str, pixel_id: str) -> pb.MetaDestination:
        request = pb.GetMetaDestinationRequest(
            tenant_ref=view.tenant.id, funnel_id=funnel_id, pixel_id=pixel_id
        )
        return (await dispatcher.GetMetaDestination(request)).destination

    default = await destination("", "1234567890")
    assert (default.pixel_id, default.access_token) == ("1234567890", "EAAB-default-token")
    own = await destination(funnel.funnel.id, "99999999")
    assert (own.access_token, own.test_event_code) == ("EAAB-funnel-token", "TEST4242")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await destination(funnel.funnel.id, "5555555555")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await provisioner.stub.ListFunnels(pb.ListFunnelsRequest(tenant_ref="acme"))
    assert [f.slug for f in listed.funnels] == ["curso"]


async def test_meta_credential_for_unknown_funnel_is_not_found(provisioner) -> None:
    await _create(provisioner.stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await provisioner.stub.SetMetaCredential(
            pb.SetMetaCredentialRequest(
                tenant_ref="acme", funnel_slug="nope", pixel_id="123456", access_token="EAAB-xxxxxx"
            )
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_calls_without_the_token_are_refused(provisioner, unauthenticated_channel) -> None:
    stub = pb_grpc.TenantRegistryServiceStub(unauthenticated_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListTenants(pb.ListTenantsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await unauthenticated_channel.close()


async def test_key_rotation_reseals_and_old_key_can_then_retire(provisioner) -> None:
    await _create(provisioner.stub)
    await provisioner.stub.SetGatewayCredential(
        pb.SetGatewayCredentialRequest(tenant_ref="acme", gateway="hotmart", secret="hottok-abcdef")
    )
    new_spec = f"k2:{base64.b64encode(os.urandom(32)).decode()}"
    rotated = build_registry(provisioner.pool, f"{new_spec},{provisioner.key_spec}")
    assert await rotated.rotate_keys() == 1
    assert await rotated.rotate_keys() == 0
    only_new = build_registry(provisioner.pool, new_spec)
    config = await only_new.tenant_config("acme")
    assert config.gateways[0].secret == "hottok-abcdef"


async def test_one_undecryptable_credential_leaves_the_others_working(provisioner) -> None:
    await _create(provisioner.stub)
    for gateway, secret in (("kiwify", "kiwi-secret-1"), ("hotmart", "hottok-2")):
        await provisioner.stub.SetGatewayCredential(
            pb.SetGatewayCredentialRequest(tenant_ref="acme", gateway=gateway, secret=secret)
        )
    await provisioner.stub.SetMetaCredential(
        pb.SetMetaCredentialRequest(
            tenant_ref="acme", pixel_id="1234567890", access_token="EAAB-token-1"
        )
    )
    # One row sealed with a key that left the key ring, another tampered with.
    await provisioner.pool.execute(
        "UPDATE provisioner.credentials SET key_id = 'retired' WHERE provider = 'hotmart'"
    )
    config = (
        await provisioner.as_("ingestion").GetWebhookConfig(
            pb.GetWebhookConfigRequest(tenant_ref="acme")
        )
    ).config
    assert [(g.gateway, g.secret) for g in config.gateways] == [("kiwify", "kiwi-secret-1")]
    destination = (
        await provisioner.as_("dispatcher").GetMetaDestination(
            pb.GetMetaDestinationRequest(tenant_ref="acme", pixel_id="1234567890")
        )
    ).destination
    assert destination.access_token == "EAAB-token-1"
    (broken,) = config.broken_credentials
    assert (broken.kind, broken.provider, broken.funnel_id) == ("gateway", "hotmart", "")
    assert "'retired'" in broken.error and "TRACKAI_ENCRYPTION_KEYS" in broken.error

    await provisioner.pool.execute(
        "UPDATE provisioner.credentials SET ciphertext = ciphertext || '\\x00'::bytea"
        " WHERE kind = 'meta'"
    )
    config = (
        await provisioner.as_("ingestion").GetWebhookConfig(
            pb.GetWebhookConfigRequest(tenant_ref="acme")
        )
    ).config
    assert [g.gateway for g in config.gateways] == ["kiwify"]
    masked = await provisioner.stub.GetMaskedCredentials(
        pb.GetMaskedCredentialsRequest(tenant_ref="acme")
    )
    assert not masked.meta_destinations
    assert {(b.kind, b.provider) for b in masked.broken_credentials} == {
        ("gateway", "hotmart"),
        ("meta", "meta"),
    }
    assert all(
        "hottok" not in b.error and "EAAB-token" not in b.error for b in masked.broken_credentials
    )
    # The dispatcher is told, definitively, which credential to set again.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await provisioner.as_("dispatcher").GetMetaDestination(
            pb.GetMetaDestinationRequest(tenant_ref="acme", pixel_id="1234567890")
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Meta credential of the tenant cannot be decrypted" in (refused.value.details() or "")
    assert "EAAB-token" not in (refused.value.details() or "")
