"""gRPC servicer of TenantRegistryService: decode, call the registry use case, encode."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.provisioner.v1 import provisioner_service_pb2 as pb
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as pb_grpc
from trackai_provisioner.domain.tenants import (
    AlreadyExistsError,
    Funnel,
    MetaDestination,
    MetaPixel,
    NotFoundError,
    Tenant,
    TenantConfig,
    TenantView,
    ValidationError,
    destination_for,
    last4,
    without_tokens,
)
from trackai_provisioner.service_layer.ports import KeyRingError
from trackai_provisioner.service_layer.registry import TenantRegistry

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


class TenantRegistryServicer(pb_grpc.TenantRegistryServiceServicer):
    def __init__(self, registry: TenantRegistry, default_rate_limit: int) -> None:
        self._registry = registry
        self._default_rate_limit = default_rate_limit

    def _tenant(self, tenant: Tenant) -> pb.Tenant:
        created = Timestamp()
        created.FromDatetime(tenant.created_at)
        return pb.Tenant(
            id=str(tenant.id),
            slug=tenant.slug,
            name=tenant.name,
            rate_limit_per_minute=tenant.rate_limit_per_minute or self._default_rate_limit,
            allowed_domains=tenant.allowed_domains,
            create_time=created,
            configured_gateways=tenant.configured_gateways,
            meta_configured=tenant.meta_configured,
            rate_limit_default=tenant.rate_limit_per_minute is None,
        )

    @staticmethod
    def _funnel(funnel: Funnel) -> pb.Funnel:
        return pb.Funnel(
            id=str(funnel.id),
            tenant_id=str(funnel.tenant_id),
            slug=funnel.slug,
            name=funnel.name,
            lookback_days=funnel.lookback_days,
            landing_url=funnel.landing_url or "",
            checkout_domains=funnel.checkout_domains,
            test_event_code=funnel.test_event_code or "",
            meta_configured=funnel.pixel_id is not None,
            pixel_id=funnel.pixel_id or "",
            pending_payment_event=funnel.pending_payment_event or "",
        )

    @staticmethod
    def _meta(meta: MetaDestination | None) -> pb.MetaDestination | None:
        if meta is None:
            return None
        return pb.MetaDestination(
            pixel_id=meta.pixel_id,
            access_token=meta.access_token,
            test_event_code=meta.test_event_code or "",
        )

    async def CreateTenant(
        self, request: pb.CreateTenantRequest, context: Context
    ) -> pb.CreateTenantResponse:
        tenant = await _call(
            context,
            lambda: self._registry.create_tenant(
                name=request.name,
                slug=request.slug,
                rate_limit_per_minute=request.rate_limit_per_minute,
                allowed_domains=list(request.allowed_domains),
            ),
        )
        return pb.CreateTenantResponse(tenant=self._tenant(tenant))

    async def GetTenant(
        self, request: pb.GetTenantRequest, context: Context
    ) -> pb.GetTenantResponse:
        ref = request.id if request.WhichOneof("ref") == "id" else request.slug
        if not ref:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ref: give a tenant id or slug")
        tenant = await _call(context, lambda: self._registry.get_tenant(ref))
        return pb.GetTenantResponse(tenant=self._tenant(tenant))

    async def ListTenants(
        self, request: pb.ListTenantsRequest, context: Context
    ) -> pb.ListTenantsResponse:
        page = await _call(
            context,
            lambda: self._registry.list_tenants(
                page_size=request.page_size, page_token=request.page_token
            ),
        )
        return pb.ListTenantsResponse(
            tenants=[self._tenant(t) for t in page.tenants], next_page_token=page.next_page_token
        )

    async def CreateFunnel(
        self, request: pb.CreateFunnelRequest, context: Context
    ) -> pb.CreateFunnelResponse:
        funnel = await _call(
            context,
            lambda: self._registry.create_funnel(
                request.tenant_ref,
                name=request.name,
                slug=request.slug,
                lookback_days=request.lookback_days,
                landing_url=request.landing_url,
                checkout_domains=list(request.checkout_domains),
                test_event_code=request.test_event_code,
                pending_payment_event=request.pending_payment_event,
            ),
        )
        return pb.CreateFunnelResponse(funnel=self._funnel(funnel))

    async def UpdateTenant(
        self, request: pb.UpdateTenantRequest, context: Context
    ) -> pb.UpdateTenantResponse:
        tenant = await _call(
            context,
            lambda: self._registry.update_tenant(request.tenant_ref, _masked(request)),
        )
        return pb.UpdateTenantResponse(tenant=self._tenant(tenant))

    async def UpdateFunnel(
        self, request: pb.UpdateFunnelRequest, context: Context
    ) -> pb.UpdateFunnelResponse:
        funnel = await _call(
            context,
            lambda: self._registry.update_funnel(
                request.tenant_ref, request.funnel_slug, _masked(request)
            ),
        )
        return pb.UpdateFunnelResponse(funnel=self._funnel(funnel))

    async def ListFunnels(
        self, request: pb.ListFunnelsRequest, context: Context
    ) -> pb.ListFunnelsResponse:
        funnels = await _call(context, lambda: self._registry.list_funnels(request.tenant_ref))
        return pb.ListFunnelsResponse(funnels=[self._funnel(f) for f in funnels])

    async def SetGatewayCredential(
        self, request: pb.SetGatewayCredentialRequest, context: Context
    ) -> pb.SetGatewayCredentialResponse:
        tenant = await _call(
            context,
            lambda: self._registry.set_gateway_credential(
                request.tenant_ref,
                gateway=request.gateway,
                secret=request.secret,
                signing_secret=request.signing_secret,
            ),
        )
        return pb.SetGatewayCredentialResponse(tenant=self._tenant(tenant))

    async def SetMetaCredential(
        self, request: pb.SetMetaCredentialRequest, context: Context
    ) -> pb.SetMetaCredentialResponse:
        tenant, funnel = await _call(
            context,
            lambda: self._registry.set_meta_credential(
                request.tenant_ref,
                pixel_id=request.pixel_id,
                access_token=request.access_token,
                test_event_code=request.test_event_code,
                funnel_slug=request.funnel_slug,
            ),
        )
        return pb.SetMetaCredentialResponse(
            tenant=self._tenant(tenant), funnel=self._funnel(funnel) if funnel else None
        )

    @staticmethod
    def _broken(config: TenantConfig, kind: str | None = None) -> list[pb.BrokenCredential]:
        return [
            pb.BrokenCredential(
                kind=b.kind, provider=b.provider, funnel_id=str(b.funnel_id or ""), error=b.error
            )
            for b in config.broken
            if kind is None or b.kind == kind
        ]

    def _view(self, view: TenantView) -> pb.TenantView:
        def pixel(meta: MetaPixel | None) -> pb.MetaPixel | None:
            if meta is None:
                return None
            return pb.MetaPixel(pixel_id=meta.pixel_id, test_event_code=meta.test_event_code or "")

        return pb.TenantView(
            tenant=self._tenant(view.tenant),
            meta=pixel(view.meta),
            funnels=[pb.FunnelView(funnel=self._funnel(f), meta=pixel(m)) for f, m in view.funnels],
        )

    async def GetTenantView(
        self, request: pb.GetTenantViewRequest, context: Context
    ) -> pb.GetTenantViewResponse:
        view = await _call(context, lambda: self._registry.tenant_view(request.tenant_ref))
        return pb.GetTenantViewResponse(view=self._view(view))

    async def GetWebhookConfig(
        self, request: pb.GetWebhookConfigRequest, context: Context
    ) -> pb.GetWebhookConfigResponse:
        config = await _call(context, lambda: self._registry.tenant_config(request.tenant_ref))
        return pb.GetWebhookConfigResponse(
            config=pb.WebhookConfig(
                view=self._view(without_tokens(config)),
                gateways=[
                    pb.GatewayCredential(
                        gateway=g.gateway, secret=g.secret, signing_secret=g.signing_secret or ""
                    )
                    for g in config.gateways
                ],
                broken_credentials=self._broken(config, kind="gateway"),
            )
        )

    async def GetMaskedCredentials(
        self, request: pb.GetMaskedCredentialsRequest, context: Context
    ) -> pb.GetMaskedCredentialsResponse:
        config = await _call(context, lambda: self._registry.tenant_config(request.tenant_ref))
        destinations = [(None, config.meta), *((f.id, m) for f, m in config.funnels)]
        return pb.GetMaskedCredentialsResponse(
            view=self._view(without_tokens(config)),
            gateways=[
                pb.MaskedGatewayCredential(
                    gateway=g.gateway,
                    secret_last4=last4(g.secret),
                    has_signing_secret=bool(g.signing_secret),
                    signing_secret_last4=last4(g.signing_secret),
                )
                for g in config.gateways
            ],
            meta_destinations=[
                pb.MaskedMetaDestination(
                    funnel_id=str(funnel_id) if funnel_id else "",
                    pixel_id=meta.pixel_id,
                    access_token_last4=last4(meta.access_token),
                    test_event_code=meta.test_event_code or "",
                )
                for funnel_id, meta in destinations
                if meta is not None
            ],
            broken_credentials=self._broken(config),
        )

    async def GetMetaDestination(
        self, request: pb.GetMetaDestinationRequest, context: Context
    ) -> pb.GetMetaDestinationResponse:
        config = await _call(context, lambda: self._registry.tenant_config(request.tenant_ref))
        destination = destination_for(config, request.funnel_id, request.pixel_id)
        broken = [b for b in config.broken if b.kind == "meta"]
        if destination is None and broken:
            # The destination may be the one that cannot be opened: say so, definitively.
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "; ".join(
                    f"the Meta credential of {_owner(b.funnel_id)} cannot be decrypted by the "
                    f"provisioner ({b.error}); set it again"
                    for b in broken
                ),
            )
        if destination is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no Meta destination of this tenant delivers pixel {request.pixel_id!r}",
            )
        return pb.GetMetaDestinationResponse(destination=self._meta(destination))


def _owner(funnel_id: uuid.UUID | None) -> str:
    return f"funnel {funnel_id}" if funnel_id else "the tenant"


#: Request fields that identify the target; never updatable, whatever the mask says.
_IDENTITY_FIELDS = frozenset({"tenant_ref", "funnel_slug", "update_mask"})


def _masked(request: pb.UpdateTenantRequest | pb.UpdateFunnelRequest) -> dict[str, Any]:
    """The values of the fields named in ``update_mask``; unknown names are passed through as
    None for the domain to refuse with the list of updatable fields."""
    fields = request.DESCRIPTOR.fields_by_name
    values: dict[str, Any] = {}
    for path in request.update_mask.paths:
        descriptor = fields.get(path)
        if descriptor is None or path in _IDENTITY_FIELDS:
            values[path] = None
        elif descriptor.is_repeated:
            values[path] = list(getattr(request, path))
        else:
            values[path] = getattr(request, path)
    return values


_STATUS = (
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (KeyRingError, grpc.StatusCode.FAILED_PRECONDITION),
)


async def _call(context: Context, use_case: Callable[[], Awaitable[T]]) -> T:
    """Run a use case, turning domain errors into gRPC status codes with their message."""
    try:
        return await use_case()
    except (ValidationError, NotFoundError, AlreadyExistsError, KeyRingError) as exc:
        code = next(code for kind, code in _STATUS if isinstance(exc, kind))
        await context.abort(code, str(exc))
        raise  # context.abort always raises; this keeps the type checker honest
