"""`trackai tenant ...` and `trackai funnel ...`: the tenant registry in the provisioner."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_cli.core import Context, SubParsers, command

if TYPE_CHECKING:
    # The generated stub constructor returns this typed variant for aio channels.
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import (
        TenantRegistryServiceAsyncStub,
    )


def _registry(ctx: Context) -> TenantRegistryServiceAsyncStub:
    return prov_grpc.TenantRegistryServiceStub(ctx.channel("provisioner"))


def _tenant_text(t: prov.Tenant) -> str:
    gateways = ",".join(t.configured_gateways) or "-"
    meta = "yes" if t.meta_configured else "no"
    return (
        f"{t.id}  {t.slug:<24} {t.name:<30} rate={t.rate_limit_per_minute}/min "
        f"gateways={gateways} meta={meta}"
    )


def _funnel_text(f: prov.Funnel) -> str:
    return (
        f"{f.id}  {f.slug:<24} {f.name:<30} lookback={f.lookback_days}d pixel={f.pixel_id or '-'}"
    )


def tenant_ref_request(ref: str) -> prov.GetTenantRequest:
    looks_like_uuid = len(ref) == 36 and ref.count("-") == 4
    return prov.GetTenantRequest(id=ref) if looks_like_uuid else prov.GetTenantRequest(slug=ref)


async def _tenant_create(args: argparse.Namespace, ctx: Context) -> None:
    resp = await _registry(ctx).CreateTenant(
        prov.CreateTenantRequest(
            name=args.name,
            slug=args.slug,
            rate_limit_per_minute=args.rate_limit or 0,
            allowed_domains=args.domain or [],
        ),
        timeout=ctx.deadline_s,
    )
    ctx.out.record(resp.tenant, "created " + _tenant_text(resp.tenant))


async def _tenant_get(args: argparse.Namespace, ctx: Context) -> None:
    resp = await _registry(ctx).GetTenant(tenant_ref_request(args.tenant), timeout=ctx.deadline_s)
    ctx.out.record(resp.tenant, _tenant_text(resp.tenant))


async def _tenant_list(args: argparse.Namespace, ctx: Context) -> None:
    tenants: list[prov.Tenant] = []
    token = ""
    while True:
        page = await _registry(ctx).ListTenants(
            prov.ListTenantsRequest(page_size=200, page_token=token), timeout=ctx.deadline_s
        )
        tenants.extend(page.tenants)
        token = page.next_page_token
        if not token:
            break
    ctx.out.records(tenants, [_tenant_text(t) for t in tenants], f"{len(tenants)} tenant(s)")


async def _tenant_set_gateway(args: argparse.Namespace, ctx: Context) -> None:
    resp = await _registry(ctx).SetGatewayCredential(
        prov.SetGatewayCredentialRequest(
            tenant_ref=args.tenant,
            gateway=args.gateway,
            secret=args.secret,
            signing_secret=args.signing_secret or "",
        ),
        timeout=ctx.deadline_s,
    )
    ctx.out.record(resp.tenant, f"{args.gateway} credential stored for {resp.tenant.slug}")


async def _tenant_set_meta(args: argparse.Namespace, ctx: Context) -> None:
    resp = await _registry(ctx).SetMetaCredential(
        prov.SetMetaCredentialRequest(
            tenant_ref=args.tenant,
            funnel_slug=args.funnel or "",
            pixel_id=args.pixel_id,
            access_token=args.access_token,
            test_event_code=args.test_event_code or "",
        ),
        timeout=ctx.deadline_s,
    )
    where = f"funnel {args.funnel}" if args.funnel else "tenant default"
    ctx.out.record(
        resp.tenant, f"Meta pixel {args.pixel_id} stored ({where}) for {resp.tenant.slug}"
    )


async def _funnel_create(args: argparse.Namespace, ctx: Context) -> None:
    resp = await _registry(ctx).CreateFunnel(
        prov.CreateFunnelRequest(
            tenant_ref=args.tenant,
            name=args.name,
            slug=args.slug,
            lookback_days=args.lookback_days or 0,
            landing_url=args.landing_url or "",
            checkout_domains=args.checkout_domain or [],
            test_event_code=args.test_event_code or "",
        ),
        timeout=ctx.deadline_s,
    )
    ctx.out.record(resp.funnel, "created " + _funnel_text(resp.funnel))


async def _funnel_list(args: argparse.Namespace, ctx: Context) -> None:
    resp = await _registry(ctx).ListFunnels(
        prov.ListFunnelsRequest(tenant_ref=args.tenant), timeout=ctx.deadline_s
    )
    funnels = list(resp.funnels)
    ctx.out.records(funnels, [_funnel_text(f) for f in funnels], f"{len(funnels)} funnel(s)")


def register(groups: SubParsers) -> None:
    tenant = groups.add_parser("tenant", help="tenants and their credentials")
    sub = tenant.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="register a tenant")
    create.add_argument("--name", required=True)
    create.add_argument("--slug", required=True, help="lowercase letters, digits, hyphens")
    create.add_argument("--rate-limit", type=int, help="webhook requests per minute (default 100)")
    create.add_argument("--domain", action="append", help="allowed site domain (repeatable)")
    command(create, _tenant_create)

    get = sub.add_parser("get", help="show one tenant")
    get.add_argument("tenant", help="tenant id or slug")
    command(get, _tenant_get)

    command(sub.add_parser("list", help="list tenants"), _tenant_list)

    gw = sub.add_parser("set-gateway", help="store a checkout gateway's webhook secret")
    gw.add_argument("tenant", help="tenant id or slug")
    gw.add_argument(
        "--gateway", required=True, help="kiwify, perfectpay, hotmart, eduzz, cakto, ..."
    )
    gw.add_argument("--secret", required=True, help="the gateway's token / signing key")
    gw.add_argument("--signing-secret", help="optional HMAC key for X-Signature: sha256=<hex>")
    command(gw, _tenant_set_gateway)

    meta = sub.add_parser("set-meta", help="store the Meta pixel id and Conversions API token")
    meta.add_argument("tenant", help="tenant id or slug")
    meta.add_argument("--pixel-id", required=True)
    meta.add_argument("--access-token", required=True)
    meta.add_argument("--test-event-code")
    meta.add_argument("--funnel", help="funnel slug (default: the tenant default destination)")
    command(meta, _tenant_set_meta)

    funnel = groups.add_parser("funnel", help="funnels of a tenant")
    fsub = funnel.add_subparsers(dest="command", required=True)
    fcreate = fsub.add_parser("create", help="add a funnel to a tenant")
    fcreate.add_argument("tenant", help="tenant id or slug")
    fcreate.add_argument("--name", required=True)
    fcreate.add_argument("--slug", required=True)
    fcreate.add_argument("--lookback-days", type=int)
    fcreate.add_argument("--landing-url")
    fcreate.add_argument("--checkout-domain", action="append")
    fcreate.add_argument("--test-event-code")
    command(fcreate, _funnel_create)
    flist = fsub.add_parser("list", help="list a tenant's funnels")
    flist.add_argument("tenant", help="tenant id or slug")
    command(flist, _funnel_list)
