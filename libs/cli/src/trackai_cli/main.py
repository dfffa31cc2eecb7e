"""The `trackai` operator command: a gRPC client of the services' public APIs.

Exit codes: 0 success, 1 the service refused (message printed), 2 bad arguments, 3 unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from pydantic import Field, SecretStr

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_kit.grpc import client_channel
from trackai_kit.settings import KitSettings

if TYPE_CHECKING:
    # The generated stub constructor returns this typed variant for aio channels.
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import (
        TenantRegistryServiceAsyncStub as Stub,
    )

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class CliSettings(KitSettings):
    provisioner_addr: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
    grpc_auth_token: SecretStr = Field(SecretStr("local-dev-token"), alias="GRPC_AUTH_TOKEN")
    timeout_s: float = Field(10.0, alias="TRACKAI_CLI_TIMEOUT")


class Output:
    """Writes results to stdout (JSON or text) and problems to stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    @staticmethod
    def _dict(message: Message) -> dict[str, Any]:
        return MessageToDict(message, preserving_proto_field_name=True)

    def record(self, message: Message, text: str) -> None:
        sys.stdout.write((json.dumps(self._dict(message)) if self.as_json else text) + "\n")

    def records(self, messages: Sequence[Message], lines: Sequence[str], header: str) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps([self._dict(m) for m in messages]) + "\n")
            return
        sys.stdout.write(header + "\n")
        for line in lines:
            sys.stdout.write(line + "\n")


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


async def _tenant_create(
    registry: Stub, args: argparse.Namespace, out: Output, deadline_s: float
) -> None:
    resp = await registry.CreateTenant(
        prov.CreateTenantRequest(
            name=args.name,
            slug=args.slug,
            rate_limit_per_minute=args.rate_limit or 0,
            allowed_domains=args.domain or [],
        ),
        timeout=deadline_s,
    )
    out.record(resp.tenant, "created " + _tenant_text(resp.tenant))


async def _tenant_get(
    registry: Stub, args: argparse.Namespace, out: Output, deadline_s: float
) -> None:
    resp = await registry.GetTenant(_tenant_ref(args.tenant), timeout=deadline_s)
    out.record(resp.tenant, _tenant_text(resp.tenant))


async def _tenant_list(
    registry: Stub, args: argparse.Namespace, out: Output, deadline_s: float
) -> None:
    tenants: list[prov.Tenant] = []
    token = ""
    while True:
        page = await registry.ListTenants(
            prov.ListTenantsRequest(page_size=200, page_token=token), timeout=deadline_s
        )
        tenants.extend(page.tenants)
        token = page.next_page_token
        if not token:
            break
    out.records(tenants, [_tenant_text(t) for t in tenants], f"{len(tenants)} tenant(s)")


async def _tenant_set_gateway(
    registry: Stub, args: argparse.Namespace, out: Output, deadline_s: float
) -> None:
    resp = await registry.SetGatewayCredential(
        prov.SetGatewayCredentialRequest(
            tenant_ref=args.tenant,
            gateway=args.gateway,
            secret=args.secret,
            signing_secret=args.signing_secret or "",
        ),
        timeout=deadline_s,
    )
    out.record(resp.tenant, f"{args.gateway} credential stored for {resp.tenant.slug}")


async def _tenant_set_meta(
    registry: Stub, args: argparse.Namespace, out: Output, deadline_s: float
) -> None:
    resp = await registry.SetMetaCredential(
        prov.SetMetaCredentialRequest(
            tenant_ref=args.tenant,
            funnel_slug=args.funnel or "",
            pixel_id=args.pixel_id,
            access_token=args.access_token,
            test_event_code=args.test_event_code or "",
        ),
        timeout=deadline_s,
    )
    where = f"funnel {args.funnel}" if args.funnel else "tenant default"
    out.record(resp.tenant, f"Meta pixel {args.pixel_id} stored ({where}) for {resp.tenant.slug}")


async def _funnel_create(
    registry: Stub, args: argparse.Namespace, out: Output, deadline_s: float
) -> None:
    resp = await registry.CreateFunnel(
        prov.CreateFunnelRequest(
            tenant_ref=args.tenant,
            name=args.name,
            slug=args.slug,
            lookback_days=args.lookback_days or 0,
            landing_url=args.landing_url or "",
            checkout_domains=args.checkout_domain or [],
            test_event_code=args.test_event_code or "",
        ),
        timeout=deadline_s,
    )
    out.record(resp.funnel, "created " + _funnel_text(resp.funnel))


async def _funnel_list(
    registry: Stub, args: argparse.Namespace, out: Output, deadline_s: float
) -> None:
    resp = await registry.ListFunnels(
        prov.ListFunnelsRequest(tenant_ref=args.tenant), timeout=deadline_s
    )
    funnels = list(resp.funnels)
    out.records(funnels, [_funnel_text(f) for f in funnels], f"{len(funnels)} funnel(s)")


Handler: TypeAlias = "Callable[[Stub, argparse.Namespace, Output, float], Awaitable[None]]"
HANDLERS: dict[tuple[str, str], Handler] = {
    ("tenant", "create"): _tenant_create,
    ("tenant", "get"): _tenant_get,
    ("tenant", "list"): _tenant_list,
    ("tenant", "set-gateway"): _tenant_set_gateway,
    ("tenant", "set-meta"): _tenant_set_meta,
    ("funnel", "create"): _funnel_create,
    ("funnel", "list"): _funnel_list,
}


async def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    out = Output(getattr(args, "json", False))
    channel = client_channel(settings.provisioner_addr, settings.grpc_auth_token.get_secret_value())
    try:
        handler = HANDLERS[(args.group, args.command)]
        await handler(prov_grpc.TenantRegistryServiceStub(channel), args, out, settings.timeout_s)
        return 0
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            sys.stderr.write(
                f"error: cannot reach the provisioner at {settings.provisioner_addr} "
                f"({exc.code().name}); is it running? (`make run`, or set "
                "PROVISIONER_GRPC_TARGET)\n"
            )
            return EXIT_UNREACHABLE
        sys.stderr.write(f"error: {exc.code().name}: {exc.details()}\n")
        return EXIT_REFUSED
    finally:
        await channel.close()


def _tenant_ref(ref: str) -> prov.GetTenantRequest:
    looks_like_uuid = len(ref) == 36 and ref.count("-") == 4
    return prov.GetTenantRequest(id=ref) if looks_like_uuid else prov.GetTenantRequest(slug=ref)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackai", description="Track AI operator command")
    groups = parser.add_subparsers(dest="group", required=True, metavar="{tenant,funnel,keys}")

    tenant = groups.add_parser("tenant", help="tenants and their credentials")
    tcmd = tenant.add_subparsers(dest="command", required=True)
    create = tcmd.add_parser("create", help="register a tenant")
    create.add_argument("--name", required=True)
    create.add_argument("--slug", required=True, help="lowercase letters, digits, hyphens")
    create.add_argument("--rate-limit", type=int, help="webhook requests per minute (default 100)")
    create.add_argument("--domain", action="append", help="allowed site domain (repeatable)")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    get = tcmd.add_parser("get", help="show one tenant")
    get.add_argument("tenant", help="tenant id or slug")
    get.add_argument("--json", action="store_true")
    lst = tcmd.add_parser("list", help="list tenants")
    lst.add_argument("--json", action="store_true", help="print a JSON array")
    gw = tcmd.add_parser("set-gateway", help="store a checkout gateway's webhook secret")
    gw.add_argument("tenant", help="tenant id or slug")
    gw.add_argument(
        "--gateway", required=True, help="kiwify, perfectpay, hotmart, eduzz, cakto, ..."
    )
    gw.add_argument("--secret", required=True, help="the gateway's token / signing key")
    gw.add_argument("--signing-secret", help="optional HMAC key for X-Signature: sha256=<hex>")
    gw.add_argument("--json", action="store_true")
    meta = tcmd.add_parser("set-meta", help="store the Meta pixel id and Conversions API token")
    meta.add_argument("tenant", help="tenant id or slug")
    meta.add_argument("--pixel-id", required=True)
    meta.add_argument("--access-token", required=True)
    meta.add_argument("--test-event-code")
    meta.add_argument("--funnel", help="funnel slug (default: the tenant default destination)")
    meta.add_argument("--json", action="store_true")

    funnel = groups.add_parser("funnel", help="funnels of a tenant")
    fcmd = funnel.add_subparsers(dest="command", required=True)
    fcreate = fcmd.add_parser("create", help="add a funnel to a tenant")
    fcreate.add_argument("tenant", help="tenant id or slug")
    fcreate.add_argument("--name", required=True)
    fcreate.add_argument("--slug", required=True)
    fcreate.add_argument("--lookback-days", type=int)
    fcreate.add_argument("--landing-url")
    fcreate.add_argument("--checkout-domain", action="append")
    fcreate.add_argument("--test-event-code")
    fcreate.add_argument("--json", action="store_true")
    flist = fcmd.add_parser("list", help="list a tenant's funnels")
    flist.add_argument("tenant", help="tenant id or slug")
    flist.add_argument("--json", action="store_true")

    keys = groups.add_parser("keys", help="credential encryption keys")
    kcmd = keys.add_subparsers(dest="command", required=True)
    kgen = kcmd.add_parser("generate", help="print a new key for TRACKAI_ENCRYPTION_KEYS")
    kgen.add_argument("--id", default="k1", help="key id (e.g. k2 when rotating)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.group == "keys":
        # 32 random bytes = one AES-256 key, in the `kid:base64` form the provisioner reads.
        sys.stdout.write(f"{args.id}:{base64.b64encode(os.urandom(32)).decode()}\n")
        return 0
    return asyncio.run(_run(args, CliSettings()))


if __name__ == "__main__":
    sys.exit(main())
