"""`trackai tenant ...` and `trackai funnel ...`: the tenant registry in the provisioner."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf.field_mask_pb2 import FieldMask

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_cli.core import EXIT_OK, EXIT_USAGE, Context, SubParsers, command

if TYPE_CHECKING:
    # The generated stub constructor returns this typed variant for aio channels.
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import (
        TenantRegistryServiceAsyncStub,
    )


def _registry(ctx: Context) -> TenantRegistryServiceAsyncStub:
    return prov_grpc.TenantRegistryServiceStub(ctx.channel("provisioner"))


#: `--pending-payment-event none` switches the pending pix/boleto event off.
PENDING_EVENT_CHOICES = ("InitiateCheckout", "AddPaymentInfo", "none")


def _tenant_text(t: prov.Tenant) -> str:
    gateways = ",".join(t.configured_gateways) or "-"
    meta = "yes" if t.meta_configured else "no"
    default = " (default)" if t.rate_limit_default else ""
    return (
        f"{t.id}  {t.slug:<24} {t.name:<30} rate={t.rate_limit_per_minute}/min{default} "
        f"gateways={gateways} meta={meta}"
    )


def _funnel_text(f: prov.Funnel) -> str:
    return (
        f"{f.id}  {f.slug:<24} {f.name:<30} lookback={f.lookback_days}d pixel={f.pixel_id or '-'} "
        f"pending={f.pending_payment_event or '-'}"
    )


def _pending_event(value: str | None) -> str:
    return "" if value in (None, "none") else str(value)


def _usage(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return EXIT_USAGE


class _SecretUnreadable(Exception):
    pass


def _secret(args: argparse.Namespace, name: str) -> str | None:
    """A secret from ``--<name>-file PATH`` (``-``: standard input), else from the deprecated
    ``--<name> VALUE``, which every user of the machine can read in ``ps`` and shell history."""
    flag = name.replace("_", "-")
    path = getattr(args, f"{name}_file")
    value = getattr(args, name)
    if path is not None:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _SecretUnreadable(f"cannot read --{flag}-file {path}: {exc}") from None
        # `echo value > file` and a here-string add one newline that is not part of the secret.
        return text.removesuffix("\n").removesuffix("\r")
    if value is not None:
        sys.stderr.write(
            f"warning: --{flag} puts the secret on the command line, where other users can see "
            f"it (ps, shell history); use --{flag}-file - and pipe it in\n"
        )
    return None if value is None else str(value)


def _add_secret(parser: argparse.ArgumentParser, name: str, what: str, *, required: bool) -> None:
    flag = name.replace("_", "-")
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        f"--{flag}-file",
        metavar="PATH",
        help=f"read {what} from PATH ('-': standard input), so it never shows in `ps`",
    )
    group.add_argument(f"--{flag}", metavar="VALUE", help="deprecated: visible in `ps`")


def _stdin_once(args: argparse.Namespace, *names: str) -> None:
    if sum(getattr(args, f"{name}_file") == "-" for name in names) > 1:
        raise _SecretUnreadable("only one secret can be read from standard input ('-')")


def tenant_ref_request(ref: str) -> prov.GetTenantRequest:
    looks_like_uuid = len(ref) == 36 and ref.count("-") == 4
    return prov.GetTenantRequest(id=ref) if looks_like_uuid else prov.GetTenantRequest(slug=ref)


async def tenant_id_of(ref: str, ctx: Context) -> str:
    """A UUID as is; a slug through the tenant registry."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        resp = await _registry(ctx).GetTenant(tenant_ref_request(ref), timeout=ctx.deadline_s)
        return resp.tenant.id


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


async def _tenant_update(args: argparse.Namespace, ctx: Context) -> int:
    request = prov.UpdateTenantRequest(tenant_ref=args.tenant)
    paths: list[str] = []
    if args.name is not None:
        request.name = args.name
        paths.append("name")
    if args.rate_limit is not None or args.default_rate_limit:
        # 0 with the path in the mask is "back to the service default".
        request.rate_limit_per_minute = args.rate_limit or 0
        paths.append("rate_limit_per_minute")
    if args.domain is not None or args.clear_domains:
        request.allowed_domains.extend(args.domain or [])
        paths.append("allowed_domains")
    if not paths:
        return _usage(
            "nothing to change: give --name, --rate-limit/--default-rate-limit or "
            "--domain/--clear-domains"
        )
    request.update_mask.CopyFrom(FieldMask(paths=paths))
    resp = await _registry(ctx).UpdateTenant(request, timeout=ctx.deadline_s)
    ctx.out.record(resp.tenant, "updated " + _tenant_text(resp.tenant))
    return EXIT_OK


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


async def _tenant_set_gateway(args: argparse.Namespace, ctx: Context) -> int | None:
    try:
        _stdin_once(args, "secret", "signing_secret")
        secret, signing_secret = _secret(args, "secret"), _secret(args, "signing_secret")
    except _SecretUnreadable as exc:
        return _usage(str(exc))
    resp = await _registry(ctx).SetGatewayCredential(
        prov.SetGatewayCredentialRequest(
            tenant_ref=args.tenant,
            gateway=args.gateway,
            secret=secret or "",
            signing_secret=signing_secret or "",
        ),
        timeout=ctx.deadline_s,
    )
    ctx.out.record(resp.tenant, f"{args.gateway} credential stored for {resp.tenant.slug}")
    return None


async def _tenant_set_meta(args: argparse.Namespace, ctx: Context) -> int | None:
    try:
        access_token = _secret(args, "access_token")
    except _SecretUnreadable as exc:
        return _usage(str(exc))
    resp = await _registry(ctx).SetMetaCredential(
        prov.SetMetaCredentialRequest(
            tenant_ref=args.tenant,
            funnel_slug=args.funnel or "",
            pixel_id=args.pixel_id,
            access_token=access_token or "",
            test_event_code=args.test_event_code or "",
        ),
        timeout=ctx.deadline_s,
    )
    where = f"funnel {args.funnel}" if args.funnel else "tenant default"
    ctx.out.record(
        resp.tenant, f"Meta pixel {args.pixel_id} stored ({where}) for {resp.tenant.slug}"
    )
    return None


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
            pending_payment_event=_pending_event(args.pending_payment_event),
        ),
        timeout=ctx.deadline_s,
    )
    ctx.out.record(resp.funnel, "created " + _funnel_text(resp.funnel))


async def _funnel_update(args: argparse.Namespace, ctx: Context) -> int:
    request = prov.UpdateFunnelRequest(tenant_ref=args.tenant, funnel_slug=args.funnel)
    paths: list[str] = []
    # (path, value to set, reset flag): a reset sends the zero value with the path in the mask.
    scalars = (
        ("name", args.name, False),
        ("lookback_days", args.lookback_days, args.default_lookback),
        ("landing_url", args.landing_url, args.clear_landing_url),
        ("test_event_code", args.test_event_code, args.clear_test_event_code),
    )
    for path, value, reset in scalars:
        if value is not None:
            setattr(request, path, value)
        if value is not None or reset:
            paths.append(path)
    if args.pending_payment_event is not None:
        request.pending_payment_event = _pending_event(args.pending_payment_event)
        paths.append("pending_payment_event")
    if args.checkout_domain is not None or args.clear_checkout_domains:
        request.checkout_domains.extend(args.checkout_domain or [])
        paths.append("checkout_domains")
    if not paths:
        return _usage("nothing to change: see `trackai funnel update --help` for the fields")
    request.update_mask.CopyFrom(FieldMask(paths=paths))
    resp = await _registry(ctx).UpdateFunnel(request, timeout=ctx.deadline_s)
    ctx.out.record(resp.funnel, "updated " + _funnel_text(resp.funnel))
    return EXIT_OK


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

    update = sub.add_parser(
        "update",
        help="change a tenant's name, webhook rate limit or allowed domains",
        description="Only the options given change. --default-rate-limit and --clear-domains "
        "reset a field; --domain replaces the whole list.",
    )
    update.add_argument("tenant", help="tenant id or slug")
    update.add_argument("--name")
    rate = update.add_mutually_exclusive_group()
    rate.add_argument("--rate-limit", type=int, help="webhook requests per minute (1-100000)")
    rate.add_argument(
        "--default-rate-limit", action="store_true", help="back to the service default"
    )
    domains = update.add_mutually_exclusive_group()
    domains.add_argument("--domain", action="append", help="allowed site domain (repeatable)")
    domains.add_argument("--clear-domains", action="store_true", help="allow no site domain")
    command(update, _tenant_update)

    get = sub.add_parser("get", help="show one tenant")
    get.add_argument("tenant", help="tenant id or slug")
    command(get, _tenant_get)

    command(sub.add_parser("list", help="list tenants"), _tenant_list)

    gw = sub.add_parser("set-gateway", help="store a checkout gateway's webhook secret")
    gw.add_argument("tenant", help="tenant id or slug")
    gw.add_argument(
        "--gateway",
        required=True,
        help="kiwify, perfectpay, hotmart, eduzz, cakto, monetizze, braip, ticto, greenn",
    )
    _add_secret(gw, "secret", "the gateway's token / signing key", required=True)
    _add_secret(
        gw, "signing_secret", "an optional relay key for X-Signature: t=...,v1=...", required=False
    )
    command(gw, _tenant_set_gateway)

    meta = sub.add_parser("set-meta", help="store the Meta pixel id and Conversions API token")
    meta.add_argument("tenant", help="tenant id or slug")
    meta.add_argument("--pixel-id", required=True)
    _add_secret(meta, "access_token", "the Conversions API access token", required=True)
    meta.add_argument("--test-event-code")
    meta.add_argument("--funnel", help="funnel slug (default: the tenant default destination)")
    command(meta, _tenant_set_meta)

    _register_funnel(groups)


def _register_funnel(groups: SubParsers) -> None:
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
    fcreate.add_argument(
        "--pending-payment-event",
        choices=PENDING_EVENT_CHOICES,
        help="Meta event for a pending pix/boleto (default: none, nothing until paid)",
    )
    command(fcreate, _funnel_create)
    _register_funnel_update(fsub)
    flist = fsub.add_parser("list", help="list a tenant's funnels")
    flist.add_argument("tenant", help="tenant id or slug")
    command(flist, _funnel_list)


def _register_funnel_update(fsub: SubParsers) -> None:
    fupdate = fsub.add_parser(
        "update",
        help="change a funnel's settings",
        description="Only the options given change; the --default-*/--clear-* options reset a "
        "field; --checkout-domain replaces the whole list.",
    )
    fupdate.add_argument("tenant", help="tenant id or slug")
    fupdate.add_argument("funnel", help="funnel slug")
    fupdate.add_argument("--name")
    lookback = fupdate.add_mutually_exclusive_group()
    lookback.add_argument("--lookback-days", type=int, help="1-90")
    lookback.add_argument("--default-lookback", action="store_true", help="back to 30 days")
    landing = fupdate.add_mutually_exclusive_group()
    landing.add_argument("--landing-url")
    landing.add_argument("--clear-landing-url", action="store_true")
    checkout = fupdate.add_mutually_exclusive_group()
    checkout.add_argument("--checkout-domain", action="append", help="repeatable")
    checkout.add_argument("--clear-checkout-domains", action="store_true")
    code = fupdate.add_mutually_exclusive_group()
    code.add_argument("--test-event-code")
    code.add_argument("--clear-test-event-code", action="store_true")
    fupdate.add_argument(
        "--pending-payment-event",
        choices=PENDING_EVENT_CHOICES,
        help="Meta event for a pending pix/boleto; none = send nothing until paid",
    )
    command(fupdate, _funnel_update)
