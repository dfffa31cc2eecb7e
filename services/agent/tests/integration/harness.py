"""Real servers for the agent's tests: local web pages over HTTP and HTTPS (with a test CA whose
leaf certificates can be expired), a scripted provisioner + ingestion gRPC server, and a webhook
sink that records what it receives."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trackai.ingestion.v1 import ingestion_service_pb2 as ing
from trackai.ingestion.v1 import ingestion_service_pb2_grpc as ing_grpc
from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_kit.grpc import AccessPolicy, rpcs, start_grpc_server
from trackai_kit.settings import GrpcSettings, local_dev_callers, local_dev_token

#: The agent calls its backends as itself.
TOKEN = local_dev_token("agent")
PIXEL = "1234567890"
OUR_SCRIPT = '<script async src="https://ingest.example/sdk/v1/track.js"></script>'


def pixel_html(*pixels: str, extra: str = "", script: bool = True) -> str:
    inits = "".join(f"fbq('init', '{p}');" for p in pixels)
    return (
        "<!doctype html><html><head><title>Loja</title>"
        f"<script>!function(f,b,e,v){{}}(window);{inits}fbq('track','PageView');</script>"
        f"{OUR_SCRIPT if script else ''}{extra}</head><body><h1>Curso</h1></body></html>"
    )


INJECTED_HTML = (
    "<!doctype html><html><head><title>Loja</title>" + OUR_SCRIPT + "<script>"
    "window.fbq=function(){(window.fbqCalls=window.fbqCalls||[]).push(arguments)};"
    f"var id=['{PIXEL[:4]}','{PIXEL[4:]}'].join('');var s=document.createElement('script');"
    "s.text=\"fbq('init', '\"+id+\"');fbq('track','PageView');\";"
    "document.head.appendChild(s);</script></head><body>Curso</body></html>"
)


@dataclass
class Page:
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    pages: dict[str, Page]
    received: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:
        """Quiet: the test reads what it needs from ``received``."""

    def do_GET(self) -> None:
        page = self.pages.get(self.path.split("?")[0]) or Page(404, "not found")
        data = page.body.encode()
        self.send_response(page.status)
        for key, value in {"Content-Type": "text/html; charset=utf-8", **page.headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.received.append({"path": self.path, "body": json.loads(body or b"{}")})
        page = self.pages.get(self.path) or Page(200, "ok")
        data = page.body.encode()
        self.send_response(page.status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class WebServer:
    base_url: str
    pages: dict[str, Page]
    received: list[dict[str, Any]]


@contextmanager
def web_server(
    pages: dict[str, Page] | None = None, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> Iterator[WebServer]:
    pages = {} if pages is None else pages
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Handler,), {"pages": pages, "received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield WebServer(f"{scheme}://{host}:{server.server_address[1]}", pages, received)
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class TestCa:
    ca_file: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def server_context(self, tmp: Path, *, not_after: dt.datetime) -> ssl.SSLContext:
        """A TLS context for localhost/127.0.0.1 with a leaf valid until ``not_after``."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        leaf = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_after - dt.timedelta(days=90))
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = tmp / "leaf.pem", tmp / "leaf.key"
        cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context


def make_ca(tmp: Path) -> TestCa:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Track AI test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=365))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca_file = tmp / "ca.pem"
    ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TestCa(ca_file, key, cert)


# --- scripted provisioner and ingestion --------------------------------------------------------
@dataclass
class Backend:
    """What the fake provisioner and ingestion answer; tests change it between calls."""

    tenant_id: str
    landing_url: str = ""
    pixel_id: str = PIXEL
    meta_token: str = "sandbox-token"
    test_event_code: str = "TEST12345"
    gateways: list[str] = field(default_factory=lambda: ["kiwify"])
    snippets: list[prov.Snippet] | None = None
    test_event_error: str = ""
    webhooks: list[tuple[str, dt.datetime]] = field(default_factory=list)
    refused: list[tuple[str, str, dt.datetime]] = field(default_factory=list)
    test_events: list[str] = field(default_factory=list)
    unavailable: bool = False


class _Registry(prov_grpc.TenantRegistryServiceServicer):
    def __init__(self, backend: Backend) -> None:
        self.b = backend

    async def GetTenantView(
        self, request: prov.GetTenantViewRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> prov.GetTenantViewResponse:
        b = self.b
        if b.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "registry down")
        funnel = prov.Funnel(
            id="f1",
            tenant_id=b.tenant_id,
            slug="launch",
            landing_url=b.landing_url,
            test_event_code=b.test_event_code,
        )
        return prov.GetTenantViewResponse(
            view=prov.TenantView(
                tenant=prov.Tenant(
                    id=b.tenant_id, slug="acme", name="Acme", configured_gateways=b.gateways
                ),
                meta=prov.MetaPixel(pixel_id=b.pixel_id, test_event_code=b.test_event_code),
                funnels=[prov.FunnelView(funnel=funnel)],
            )
        )

    async def GetMetaDestination(
        self,
        request: prov.GetMetaDestinationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> prov.GetMetaDestinationResponse:
        b = self.b
        if b.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "registry down")
        if request.pixel_id != b.pixel_id:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no destination")
        return prov.GetMetaDestinationResponse(
            destination=prov.MetaDestination(
                pixel_id=b.pixel_id, access_token=b.meta_token, test_event_code=b.test_event_code
            )
        )


class _Provisioning(prov_grpc.ProvisioningServiceServicer):
    def __init__(self, backend: Backend) -> None:
        self.b = backend

    async def GetProvisioningRun(
        self, request: prov.GetProvisioningRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> prov.GetProvisioningRunResponse:
        if self.b.snippets is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no run for this funnel")
        return prov.GetProvisioningRunResponse(
            run=prov.ProvisioningRun(
                run_id="run-1",
                tenant_id=self.b.tenant_id,
                run_status=prov.RUN_STATUS_AWAITING_APPROVAL,
                result=prov.ProvisioningResult(snippets=self.b.snippets),
            )
        )

    async def SendTestEvent(
        self, request: prov.SendTestEventRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> prov.SendTestEventResponse:
        if self.b.test_event_error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, self.b.test_event_error)
        event_id = f"trackai-test-{len(self.b.test_events) + 1:04d}"
        self.b.test_events.append(event_id)
        return prov.SendTestEventResponse(
            run_id=request.run_id,
            event_id=event_id,
            events_received=1,
            fbtrace_id="AbCdEf",
            test_event_code=self.b.test_event_code,
        )


class _Ingestion(ing_grpc.IngestionServiceServicer):
    def __init__(self, backend: Backend) -> None:
        self.b = backend

    async def GetWebhookActivity(
        self, request: ing.GetWebhookActivityRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ing.GetWebhookActivityResponse:
        since = request.since_time.ToDatetime(tzinfo=dt.UTC)
        found: dict[str, ing.GatewayActivity] = {}
        for gateway, received in self.b.webhooks:
            if received < since:
                continue
            activity = found.setdefault(gateway, ing.GatewayActivity(gateway=gateway))
            activity.received += 1
            activity.by_outcome["accepted"] += 1
            activity.last_received_time.FromDatetime(received)
        refused: dict[tuple[str, str], ing.CredentialMismatch] = {}
        for gateway, credential, at in self.b.refused:
            if at < since:
                continue
            mismatch = refused.setdefault(
                (gateway, credential),
                ing.CredentialMismatch(gateway=gateway, credential=credential),
            )
            mismatch.count += 1
            mismatch.last_time.FromDatetime(at)
        return ing.GetWebhookActivityResponse(
            gateways=list(found.values()), refused=list(refused.values())
        )


async def start_backend(backend: Backend) -> Any:
    def register(server: grpc.aio.Server) -> None:
        prov_grpc.add_TenantRegistryServiceServicer_to_server(_Registry(backend), server)
        prov_grpc.add_ProvisioningServiceServicer_to_server(_Provisioning(backend), server)
        ing_grpc.add_IngestionServiceServicer_to_server(_Ingestion(backend), server)

    services = (
        prov.DESCRIPTOR.services_by_name["TenantRegistryService"],
        prov.DESCRIPTOR.services_by_name["ProvisioningService"],
        ing.DESCRIPTOR.services_by_name["IngestionService"],
    )
    return await start_grpc_server(
        GrpcSettings(port=0, callers=local_dev_callers()),
        register,
        [service.full_name for service in services],
        AccessPolicy.of({"agent": [m for service in services for m in rpcs(service)]}),
    )
