"""Contract tests: the protos lint clean, the committed code matches them, and every published
event survives a wire round trip; the generated gRPC code serves and calls over a real server."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.common.v1 import events_pb2 as common_events
from trackai.ingestion.v1 import events_pb2 as ingestion_events
from trackai.matcher.v1 import events_pb2 as matcher_events
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
M = TypeVar("M", bound=Message)
SHA = "a" * 64  # shape of a SHA-256 hex digest

# The provisioner has two services (registry and saga) instead of one ProvisionerService: the
# registry is called on every webhook and the saga rarely, and they authorise different callers.
EXPECTED_SERVICES = {
    "agent": {"AgentService"},
    # Served by ingestion, matcher and dispatcher alike (trackai_kit.retention).
    "common": {"RetentionService"},
    "console": {"UserAdminService"},
    "dispatcher": {"DispatcherService"},
    "ingestion": {"IngestionService"},
    "matcher": {"MatcherService"},
    "provisioner": {"TenantRegistryService", "ProvisioningService"},
}
# Field names that would mean plaintext personal data travels on a queue.
PLAINTEXT_PII_FIELDS = {
    "email",
    "phone",
    "first_name",
    "last_name",
    "cpf",
    "document",
    "buyer_name",
}


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed in the workspace venv"
    return found


def _module_for(proto: Path) -> FileDescriptor:
    relative = proto.relative_to(PROTO_DIR).with_suffix("")
    module = importlib.import_module(".".join(relative.parts) + "_pb2")
    descriptor: FileDescriptor = module.DESCRIPTOR
    return descriptor


def _roundtrip(message: M) -> M:
    wire = type(message).FromString(message.SerializeToString())
    assert wire == message
    via_json = json_format.Parse(json_format.MessageToJson(message), type(message)())
    assert via_json == message
    return wire


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=123_000_000)


def test_buf_lint_passes() -> None:
    result = subprocess.run(
        [_tool("buf"), "lint"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_matches_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_service_proto_declares_its_services_and_events_declare_none() -> None:
    found: dict[str, set[str]] = {}
    for proto in sorted(PROTO_DIR.glob("trackai/*/v1/*.proto")):
        services = set(_module_for(proto).services_by_name)
        if proto.name.endswith("_service.proto"):
            assert proto.name == f"{proto.parts[-3]}_service.proto"
            found[proto.parts[-3]] = services
        else:
            # events.proto files hold what goes on RabbitMQ; RPCs belong in <svc>_service.proto.
            assert not services, f"{proto} declares services {services}"
    assert found == EXPECTED_SERVICES
    assert all(name.endswith("Service") for names in found.values() for name in names)


def test_published_events_carry_no_plaintext_personal_data_fields() -> None:
    def walk(descriptor: Descriptor, seen: set[str]) -> set[str]:
        if descriptor.full_name in seen:
            return set()
        seen.add(descriptor.full_name)
        names = {field.name for field in descriptor.fields}
        for field in descriptor.fields:
            if field.message_type is not None:
                names |= walk(field.message_type, seen)
        return names

    for module in (ingestion_events, matcher_events, common_events):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            leaked = walk(message, set()) & PLAINTEXT_PII_FIELDS
            assert not leaked, f"{message.full_name} has plaintext PII fields {leaked}"


def test_ingest_event_conversion_roundtrip_keeps_exact_money_and_hashes() -> None:
    event = ingestion_events.IngestEvent(
        message_id="0b7c2f1e-outbox-1",
        tenant_id="tenant-1",
        received_time=_ts(1_735_700_000),
        conversion=ingestion_events.Conversion(
            conversion_id="conv-1",
            order_id="KIW-123",
            gateway="kiwify",
            status=ingestion_events.CONVERSION_STATUS_APPROVED,
            gateway_status="order_approved",
            event_time=_ts(1_735_699_990),
            amount="19.90",
            currency="BRL",
            product_id="prod-9",
            product_name="Curso",
            payment_method=ingestion_events.PAYMENT_METHOD_PIX,
            tracking=ingestion_events.TrackingParameters(
                sck="sess-42",
                utm_source="facebook",
                fbc="fb.1.1735699000000.AbC",
                extra={"s1": "sess-42"},
            ),
            client_ip="2804:14c::1",
            user_agent="Mozilla/5.0",
            user_data=ingestion_events.HashedUserData(em=SHA, ph=SHA, country=SHA),
        ),
    )
    decoded = _roundtrip(event)
    assert decoded.WhichOneof("payload") == "conversion"
    assert Decimal(decoded.conversion.amount) == Decimal("19.90")
    assert decoded.conversion.tracking.extra["s1"] == "sess-42"
    assert decoded.conversion.tracking.fbc.endswith("AbC")  # case preserved
    assert decoded.received_time.nanos == 123_000_000


def test_ingest_event_browser_hit_roundtrip() -> None:
    event = ingestion_events.IngestEvent(
        message_id="m-2",
        tenant_id="tenant-1",
        received_time=_ts(1_735_700_100),
        hit=ingestion_events.BrowserHit(
            hit_type=ingestion_events.HIT_TYPE_LEAD,
            session_id="sess-42",
            event_id="evt-lead-1",
            page_url="https://lp.example.com/?fbclid=AbC",
            referrer="https://www.facebook.com/",
            tracking=ingestion_events.TrackingParameters(fbclid="AbC", fbp="fb.1.1.2"),
            client_ip="203.0.113.7",
            user_agent="Mozilla/5.0",
            user_data=ingestion_events.HashedUserData(em=SHA),
            event_time=_ts(1_735_700_099),
        ),
    )
    decoded = _roundtrip(event)
    assert decoded.WhichOneof("payload") == "hit"
    assert decoded.hit.hit_type == ingestion_events.HIT_TYPE_LEAD
    assert not decoded.HasField("conversion")


def test_dispatch_request_roundtrip_matches_meta_server_event_shape() -> None:
    request = matcher_events.DispatchRequest(
        message_id="m-3",
        tenant_id="tenant-1",
        funnel_id="funnel-1",
        pixel_id="123456789012345",
        match_stage=matcher_events.MATCH_STAGE_SEMI_DETERMINISTIC,
        match_score=0.97,
        emq=7.5,
        conversion_id="conv-1",
        create_time=_ts(1_735_700_200),
        event=matcher_events.ServerEvent(
            event_name="Purchase",
            event_time=1_735_699_990,
            event_id=SHA,
            action_source="website",
            event_source_url="https://lp.example.com/",
            user_data=matcher_events.UserData(
                em=[SHA],
                ph=[SHA, SHA],
                client_ip_address="203.0.113.7",
                client_user_agent="Mozilla/5.0",
                fbc="fb.1.1735699000000.AbC",
            ),
            custom_data=matcher_events.CustomData(
                value="19.90",
                currency="BRL",
                content_ids=["prod-9"],
                content_type="product",
                order_id="KIW-123",
            ),
        ),
    )
    decoded = _roundtrip(request)
    # Meta's own field names: the dispatcher can emit the event with preserving_proto_field_name.
    as_meta = json_format.MessageToDict(decoded.event, preserving_proto_field_name=True)
    assert set(as_meta) == {
        "event_name",
        "event_time",
        "event_id",
        "action_source",
        "event_source_url",
        "user_data",
        "custom_data",
    }
    assert as_meta["user_data"]["ph"] == [SHA, SHA]
    assert Decimal(decoded.event.custom_data.value) == Decimal("19.90")


def test_status_update_roundtrip() -> None:
    update = common_events.StatusUpdate(
        tenant_id="tenant-1",
        entity=common_events.STATUS_ENTITY_DISPATCH,
        entity_id=SHA,
        status="retrying",
        detail="Meta 503, attempt 2 of 6",
        time=_ts(1_735_700_300),
    )
    assert _roundtrip(update).entity == common_events.STATUS_ENTITY_DISPATCH


class _Registry(prov_grpc.TenantRegistryServiceServicer):
    async def GetTenant(
        self, request: prov.GetTenantRequest, context: grpc.aio.ServicerContext
    ) -> prov.GetTenantResponse:
        if request.WhichOneof("ref") != "slug" or request.slug != "acme":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such tenant")
        return prov.GetTenantResponse(
            tenant=prov.Tenant(id="t-1", slug="acme", name="Acme", configured_gateways=["kiwify"])
        )


class _Provisioning(prov_grpc.ProvisioningServiceServicer):
    async def ProvisionTenant(
        self, request: prov.ProvisionTenantRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[prov.ProvisionTenantResponse]:
        for step in ("validate_meta", "stape_container"):
            yield prov.ProvisionTenantResponse(
                run_id="run-1", step=step, step_status=prov.STEP_STATUS_SUCCEEDED
            )
        yield prov.ProvisionTenantResponse(
            run_id="run-1",
            run_status=prov.RUN_STATUS_AWAITING_APPROVAL,
            result=prov.ProvisioningResult(custom_domain=f"{request.tenant_ref}.track.test"),
        )


@pytest.fixture
async def provisioner_channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server()
    # Only the RPCs exercised here are implemented; the others answer UNIMPLEMENTED.
    prov_grpc.add_TenantRegistryServiceServicer_to_server(_Registry(), server)  # type: ignore[abstract]
    prov_grpc.add_ProvisioningServiceServicer_to_server(_Provisioning(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(grace=None)


async def test_generated_grpc_code_serves_unary_and_streaming_calls(
    provisioner_channel: grpc.aio.Channel,
) -> None:
    registry = prov_grpc.TenantRegistryServiceStub(provisioner_channel)
    found = await registry.GetTenant(prov.GetTenantRequest(slug="acme"))
    assert found.tenant.id == "t-1"
    assert list(found.tenant.configured_gateways) == ["kiwify"]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await registry.GetTenant(prov.GetTenantRequest(id="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    saga = prov_grpc.ProvisioningServiceStub(provisioner_channel)
    progress = [
        m async for m in saga.ProvisionTenant(prov.ProvisionTenantRequest(tenant_ref="acme"))
    ]
    assert [m.step for m in progress[:2]] == ["validate_meta", "stape_container"]
    assert progress[-1].run_status == prov.RUN_STATUS_AWAITING_APPROVAL
    assert progress[-1].result.custom_domain == "acme.track.test"
