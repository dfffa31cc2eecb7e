"""The setup wizard's calls: the provisioner's registry writes and provisioning saga, and the
agent's read-only checks (AgentService.RunCheck). An answer that refuses a change becomes
UpstreamRefused with a pt-BR message; a service that is down, SourceUnavailable."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from trackai.agent.v1 import agent_service_pb2 as agent_pb
from trackai.agent.v1 import agent_service_pb2_grpc as agent_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_console.adapters.read_apis import answered, or_none, to_datetime, to_timestamp
from trackai_console.domain.wizard import (
    Check,
    CompanyForm,
    MetaForm,
    Run,
    SagaStep,
    Setup,
    Snippet,
    TestEvent,
    slugify,
)
from trackai_console.service_layer.ports import UpstreamRefused

if TYPE_CHECKING:
    from trackai.agent.v1.agent_service_pb2_grpc import AgentServiceAsyncStub
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import (
        ProvisioningServiceAsyncStub,
        TenantRegistryServiceAsyncStub,
    )

T = TypeVar("T")
_REFUSALS = (
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
)
#: Provisioning runs take minutes; the stream has its own, longer deadline.
PROVISION_TIMEOUT_S = 1800.0


def _word(enum_name: str, prefix: str) -> str:
    return enum_name.removeprefix(prefix).lower()


async def accepted(call: Awaitable[T], refusal: str) -> T:
    """The answer; UpstreamRefused("<refusal> <upstream detail>") when the change is refused."""
    try:
        return await answered(call)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in _REFUSALS:
            raise UpstreamRefused(f"{refusal} (motivo: {exc.details()})") from exc
        raise


def _run(run: prov.ProvisioningRun) -> Run:
    result = run.result
    return Run(
        id=run.run_id,
        status=_word(prov.RunStatus.Name(run.run_status), "RUN_STATUS_").replace("unspecified", ""),
        steps=tuple(
            SagaStep(s.step, _word(prov.StepStatus.Name(s.status), "STEP_STATUS_"), s.detail)
            for s in run.steps
        ),
        error=run.error,
        snippets=tuple(Snippet(s.platform, s.title, s.where, s.content) for s in result.snippets),
        custom_domain=result.custom_domain,
        gtm_version_id=result.gtm_version_id,
        test_event_id=run.test_event_id,
        test_event_time=to_datetime(run.test_event_time)
        if run.HasField("test_event_time")
        else None,
        approved_by=run.approved_by,
        approve_time=to_datetime(run.approve_time) if run.HasField("approve_time") else None,
    )


class GrpcSetupRegistry:
    def __init__(self, provisioner: grpc.aio.Channel, *, timeout_s: float) -> None:
        self._registry: TenantRegistryServiceAsyncStub = prov_grpc.TenantRegistryServiceStub(
            provisioner
        )
        self._provisioning: ProvisioningServiceAsyncStub = prov_grpc.ProvisioningServiceStub(
            provisioner
        )
        self._timeout = timeout_s

    async def setup(self, tenant_id: str, funnel_slug: str) -> Setup | None:
        answer = await or_none(
            answered(
                self._registry.GetMaskedCredentials(
                    prov.GetMaskedCredentialsRequest(tenant_ref=tenant_id), timeout=self._timeout
                )
            )
        )
        if answer is None:
            return None
        view = answer.view
        funnels = [f.funnel for f in view.funnels]
        chosen = [f for f in funnels if f.slug == funnel_slug] or (
            funnels if len(funnels) == 1 and not funnel_slug else []
        )
        funnel = chosen[0] if chosen else None
        metas = {m.funnel_id: m for m in answer.meta_destinations}
        meta = metas.get(funnel.id if funnel else "") or metas.get("")
        return Setup(
            tenant_name=view.tenant.name,
            funnel_slug=funnel.slug if funnel else "",
            funnel_name=funnel.name if funnel else "",
            landing_url=funnel.landing_url if funnel else "",
            checkout_domains=tuple(funnel.checkout_domains) if funnel else (),
            test_event_code=funnel.test_event_code if funnel else "",
            gateways={g.gateway: g.secret_last4 for g in answer.gateways},
            pixel_id=meta.pixel_id if meta else "",
            token_last4=meta.access_token_last4 if meta else "",
            meta_stored=meta is not None,
        )

    async def save_company(self, tenant_id: str, funnel_slug: str, form: CompanyForm) -> str:
        await accepted(
            self._registry.UpdateTenant(
                prov.UpdateTenantRequest(
                    tenant_ref=tenant_id, name=form.company, update_mask=FieldMask(paths=["name"])
                ),
                timeout=self._timeout,
            ),
            "O cadastro não aceitou o nome da empresa",
        )
        if funnel_slug:
            answer = await accepted(
                self._registry.UpdateFunnel(
                    prov.UpdateFunnelRequest(
                        tenant_ref=tenant_id,
                        funnel_slug=funnel_slug,
                        name=form.funnel,
                        landing_url=form.landing_url,
                        checkout_domains=form.checkout_domains,
                        update_mask=FieldMask(paths=["name", "landing_url", "checkout_domains"]),
                    ),
                    timeout=self._timeout,
                ),
                "O cadastro não aceitou o funil",
            )
            return answer.funnel.slug
        created = await accepted(
            self._registry.CreateFunnel(
                prov.CreateFunnelRequest(
                    tenant_ref=tenant_id,
                    name=form.funnel,
                    slug=slugify(form.funnel),
                    landing_url=form.landing_url,
                    checkout_domains=form.checkout_domains,
                ),
                timeout=self._timeout,
            ),
            "Não foi possível criar o funil",
        )
        return created.funnel.slug

    async def set_gateway(self, tenant_id: str, gateway: str, secret: str) -> None:
        await accepted(
            self._registry.SetGatewayCredential(
                prov.SetGatewayCredentialRequest(
                    tenant_ref=tenant_id, gateway=gateway, secret=secret
                ),
                timeout=self._timeout,
            ),
            "O cadastro não aceitou o segredo do checkout",
        )

    async def set_meta(self, tenant_id: str, funnel_slug: str, form: MetaForm) -> None:
        if form.token:
            # The test code goes on the funnel (it wins over the destination's), so clearing it
            # at publish makes live traffic live.
            await accepted(
                self._registry.SetMetaCredential(
                    prov.SetMetaCredentialRequest(
                        tenant_ref=tenant_id,
                        funnel_slug=funnel_slug,
                        pixel_id=form.pixel_id,
                        access_token=form.token,
                    ),
                    timeout=self._timeout,
                ),
                "O cadastro não aceitou o pixel e o token",
            )
        await self._test_code(tenant_id, funnel_slug, form.test_event_code)

    async def clear_test_code(self, tenant_id: str, funnel_slug: str) -> None:
        await self._test_code(tenant_id, funnel_slug, "")

    async def _test_code(self, tenant_id: str, funnel_slug: str, code: str) -> None:
        await accepted(
            self._registry.UpdateFunnel(
                prov.UpdateFunnelRequest(
                    tenant_ref=tenant_id,
                    funnel_slug=funnel_slug,
                    test_event_code=code,
                    update_mask=FieldMask(paths=["test_event_code"]),
                ),
                timeout=self._timeout,
            ),
            "O cadastro não aceitou o código de evento de teste",
        )

    async def provision(self, tenant_id: str, funnel_slug: str) -> str:
        status = ""
        stream = self._provisioning.ProvisionTenant(
            prov.ProvisionTenantRequest(tenant_ref=tenant_id, funnel_slug=funnel_slug),
            timeout=PROVISION_TIMEOUT_S,
        )
        try:
            async for progress in stream:
                status = _word(prov.RunStatus.Name(progress.run_status), "RUN_STATUS_")
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSALS:
                raise UpstreamRefused(
                    f"O provisionamento não começou (motivo: {exc.details()})"
                ) from exc
            raise
        return status

    async def run(self, tenant_id: str, funnel_slug: str) -> Run | None:
        answer = await or_none(
            answered(
                self._provisioning.GetProvisioningRun(
                    prov.GetProvisioningRunRequest(
                        funnel=prov.FunnelRef(tenant_ref=tenant_id, funnel_slug=funnel_slug)
                    ),
                    timeout=self._timeout,
                )
            )
        )
        return _run(answer.run) if answer is not None else None

    async def send_test_event(self, run_id: str) -> TestEvent:
        answer = await accepted(
            self._provisioning.SendTestEvent(
                prov.SendTestEventRequest(run_id=run_id), timeout=self._timeout
            ),
            "O evento de teste não foi enviado",
        )
        return TestEvent(answer.event_id, answer.events_received, answer.test_event_code)

    async def publish(self, run_id: str, approved_by: str, note: str) -> str:
        answer = await accepted(
            self._provisioning.ApproveAndPublish(
                prov.ApproveAndPublishRequest(run_id=run_id, approved_by=approved_by, note=note),
                timeout=self._timeout,
            ),
            "A publicação foi recusada",
        )
        return answer.published_version_id


class GrpcSetupChecks:
    def __init__(self, agent: grpc.aio.Channel, *, timeout_s: float) -> None:
        self._agent: AgentServiceAsyncStub = agent_grpc.AgentServiceStub(agent)
        self._timeout = timeout_s

    async def check(self, tenant_id: str, funnel_slug: str, tool: str, since: datetime) -> Check:
        answer = await answered(
            self._agent.RunCheck(
                agent_pb.RunCheckRequest(
                    tenant_id=tenant_id,
                    funnel_slug=funnel_slug,
                    tool=tool,
                    setup_start_time=to_timestamp(since),
                ),
                timeout=self._timeout,
            )
        )
        details = json.loads(answer.details_json) if answer.details_json else {}
        return Check(answer.status, answer.message, answer.action, details)
