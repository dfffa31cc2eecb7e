"""The setup wizard: its use cases on the real PostgreSQL store (closed and resumed from the
backend, steps locked until their prerequisites, provisioning locked until a verified webhook,
publish refused before a successful test event and recorded with the signed-in approver), and its
pages over the real app (pt-BR form errors, secrets never shown back, CSRF, tenant scope), with
the provisioner and the agent as in-memory fakes of the wizard's ports."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from trackai_console.adapters.wizard_store import PostgresWizardStore
from trackai_console.domain.accounts import User
from trackai_console.domain.wizard import CompanyForm, FormErrors
from trackai_console.service_layer.ports import UpstreamRefused
from trackai_console.service_layer.wizard import SetupWizard, StepLocked

from .conftest import Console, build_app, csrf_of, sign_in
from .wizard_fakes import FakeChecks, FakeRegistry

pytestmark = pytest.mark.integration

COMPANY = CompanyForm.parse("Loja da Ana", "Curso de Março", "https://lojadaana.com.br/curso", "")
COMPANY_TIME = datetime(2026, 12, 7, 12, tzinfo=UTC)
SECRET = "kiwify-token-0001-abcd"
META_TOKEN = "EAAB-meta-token-9876-wxyz"


@dataclass
class Wired:
    wizard: SetupWizard
    registry: FakeRegistry
    checks: FakeChecks
    tenant: str


@pytest.fixture
async def wired(console: Console) -> AsyncIterator[Wired]:
    registry, checks = FakeRegistry(), FakeChecks()
    tenant = str(uuid.uuid4())
    registry.tenant(tenant)
    wizard = SetupWizard(PostgresWizardStore(console.pool), registry, checks)
    console.app = build_app(console.accounts, console.pool, wizard=wizard)
    yield Wired(wizard, registry, checks, tenant)


async def _wait_run(wired: Wired, status: str) -> None:
    while not (wired.registry.tenant(wired.tenant).run and
               wired.registry.tenant(wired.tenant).run.status == status):  # type: ignore[union-attr]  # fmt: skip
        await asyncio.sleep(0.01)


async def _ready_to_provision(wired: Wired) -> None:
    await wired.wizard.save_company(wired.tenant, COMPANY)
    await wired.wizard.save_gateway(wired.tenant, "kiwify", SECRET)
    await wired.wizard.save_meta(wired.tenant, "1234567890", META_TOKEN, "test123")


# --- use cases ---------------------------------------------------------------------------------
async def test_the_wizard_resumes_where_it_was_left(wired: Wired, console: Console) -> None:
    first = await wired.wizard.view(wired.tenant)
    assert first.step == "empresa"
    await wired.wizard.save_company(wired.tenant, COMPANY)
    # A new process (same database): the position and the funnel come back from the backend.
    again = SetupWizard(PostgresWizardStore(console.pool), wired.registry, wired.checks)
    resumed = await again.view(wired.tenant)
    assert (resumed.step, resumed.record.funnel_slug) == ("checkout", "curso-de-marco")
    assert resumed.record.started_at == first.record.started_at


async def test_steps_stay_locked_until_their_prerequisites(wired: Wired) -> None:
    with pytest.raises(StepLocked) as locked:
        await wired.wizard.view(wired.tenant, "meta")
    assert locked.value.step == "empresa"
    await wired.wizard.save_company(wired.tenant, COMPANY)
    with pytest.raises(StepLocked) as locked:
        await wired.wizard.view(wired.tenant, "provisionamento")
    assert (locked.value.step, locked.value.message) == (
        "checkout",
        "Primeiro escolha o checkout e salve o segredo do webhook.",
    )


async def test_provisioning_is_locked_until_a_verified_webhook(wired: Wired) -> None:
    await _ready_to_provision(wired)
    with pytest.raises(StepLocked) as locked:
        await wired.wizard.start_provisioning(wired.tenant)
    assert locked.value.step == "checkout"
    assert "webhook verificado" in locked.value.message
    assert f"/api/v1/webhooks/kiwify/{wired.tenant}" in locked.value.message
    assert wired.registry.tenant(wired.tenant).run is None
    # The webhook check counts from when the wizard began, not from now.
    started = (await wired.wizard.view(wired.tenant)).record.started_at
    assert {since for _, tool, since in wired.checks.calls if "webhook" in tool} == {started}

    wired.checks.webhook_arrived.add(wired.tenant)
    await wired.wizard.start_provisioning(wired.tenant)
    await _wait_run(wired, "awaiting_approval")


async def test_publish_needs_a_test_event_and_records_the_approver(
    wired: Wired, console: Console
) -> None:
    await _ready_to_provision(wired)
    wired.checks.webhook_arrived.add(wired.tenant)
    await wired.wizard.start_provisioning(wired.tenant)
    await _wait_run(wired, "awaiting_approval")
    seller = User(uuid.uuid4(), "seller", uuid.UUID(wired.tenant), False, True, COMPANY_TIME)
    await console.pool.execute(
        "INSERT INTO console.users (id, email_hash, role, tenant_id, password_hash) "
        "VALUES ($1, repeat('a', 64), 'seller', $2, 'x')",
        seller.id,
        seller.tenant_id,
    )
    with pytest.raises(UpstreamRefused):
        await wired.wizard.publish(wired.tenant, seller, "")
    assert wired.registry.published == []

    sent = await wired.wizard.send_test_event(wired.tenant)
    assert sent.test_event_code == "TEST123"
    await wired.wizard.publish(wired.tenant, seller, "revisado")
    assert wired.registry.published == [("run-1", f"console:{seller.id}", "revisado")]
    row = await console.pool.fetchrow(
        "SELECT approved_by, approved_at, step FROM console.setup_wizards WHERE tenant_id = $1",
        uuid.UUID(wired.tenant),
    )
    assert row["approved_by"] == seller.id and row["approved_at"] is not None
    assert row["step"] == "publicar"
    # Live traffic from now on: the funnel's test code is cleared.
    assert wired.registry.tenant(wired.tenant).test_code == ""


# --- pages -------------------------------------------------------------------------------------
async def _seller(console: Console, wired: Wired, email: str = "ana@loja.com.br") -> None:
    await console.seller(email, uuid.UUID(wired.tenant))


async def _post(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    token = await csrf_of(client, "/configuracao")
    return await client.post(path, data={**data, "csrf_token": token})


async def test_forms_answer_in_portuguese_and_never_show_secrets(
    wired: Wired, console: Console
) -> None:
    await _seller(console, wired)
    async with console.client() as client:
        await sign_in(client, "ana@loja.com.br")
        page = await client.get("/configuracao")
        assert "Empresa e funil" in page.text and 'role="dialog"' in page.text
        bad = await _post(client, "/configuracao/empresa",
                          {"empresa": "A", "funil": "", "pagina": "http://x"})  # fmt: skip
        assert bad.status_code == 400
        assert "Informe o nome da empresa (de 2 a 100 caracteres)." in bad.text
        assert "começando com https://" in bad.text
        # What was sent comes back, not what is stored ("Tenant"), next to its message.
        assert 'id="empresa" name="empresa" type="text" autocomplete="organization" value="A"' in (
            bad.text
        )
        ok = await _post(client, "/configuracao/empresa", {
            "empresa": "Loja da Ana", "funil": "Curso", "pagina": "https://lojadaana.com.br/",
        })  # fmt: skip
        assert ok.status_code == 303 and ok.headers["location"] == "/configuracao/checkout"

        missing = await _post(client, "/configuracao/checkout", {"gateway": "kiwify"})
        assert missing.status_code == 400 and "Cole o token ou segredo do webhook" in missing.text
        saved = await _post(client, "/configuracao/checkout",
                            {"gateway": "kiwify", "segredo": SECRET})  # fmt: skip
        assert saved.status_code == 303
        checkout = await client.get(saved.headers["location"])
        assert SECRET not in checkout.text and "abcd" in checkout.text  # the last 4 only
        assert "Aguardando o primeiro webhook" in checkout.text
        assert f"/api/v1/webhooks/kiwify/{wired.tenant}" in checkout.text

        wired.checks.meta = wired.checks.meta.__class__(
            "error", "O token do Meta expirou em 02/12.", "Gere um novo em Usuários do sistema."
        )
        expired = await _post(client, "/configuracao/meta", {
            "pixel": "1234567890", "token": META_TOKEN, "codigo_teste": "TEST1",
        })  # fmt: skip
        assert expired.status_code == 400
        assert "O token do Meta expirou em 02/12." in expired.text
        assert META_TOKEN not in expired.text and "wxyz" in expired.text
        fragment = await client.get("/configuracao/webhook")
        assert fragment.status_code == 200 and "Aguardando" in fragment.text
        # The page re-reads the box when its status stream opens and on every status.
        assert 'hx-trigger="sse:ready, sse:status, every 20s"' in checkout.text
        wired.checks.webhook_arrived.add(wired.tenant)
        green = await client.get("/configuracao/webhook")
        # 286: htmx stops the slow re-check once it is green.
        assert green.status_code == 286 and "Webhook verificado recebido" in green.text


async def test_publish_is_refused_before_a_test_event_then_approved(
    wired: Wired, console: Console
) -> None:
    await _seller(console, wired)
    await _ready_to_provision(wired)
    wired.checks.webhook_arrived.add(wired.tenant)
    async with console.client() as client:
        await sign_in(client, "ana@loja.com.br")
        started = await _post(client, "/configuracao/provisionamento", {})
        assert started.status_code == 303
        await _wait_run(wired, "awaiting_approval")
        steps = await client.get("/configuracao/provisionamento/etapas")
        assert steps.text.count("Concluído") == 12 and "Pronto para revisão" in steps.text
        refused = await _post(client, "/configuracao/publicar", {"confirmo": "sim"})
        assert refused.status_code == 409
        assert "A publicação foi recusada" in refused.text
        assert wired.registry.published == []
        sent = await _post(client, "/configuracao/teste", {})
        assert (
            "Evento de teste enviado (event_id evt-test-1)"
            in (await client.get(sent.headers["location"])).text
        )
        unconfirmed = await _post(client, "/configuracao/publicar", {})
        assert unconfirmed.status_code == 400 and "Marque a confirmação" in unconfirmed.text
        published = await _post(client, "/configuracao/publicar", {"confirmo": "sim"})
        assert published.status_code == 303
        done = await client.get(published.headers["location"])
        assert "Publicado! O rastreamento está no ar." in done.text
        assert "Aprovado por você" in done.text
        assert len(wired.registry.published) == 1


async def test_a_seller_cannot_set_up_another_tenant(wired: Wired, console: Console) -> None:
    await _seller(console, wired)
    other = str(uuid.uuid4())
    wired.registry.tenant(other)
    async with console.client() as client:
        await sign_in(client, "ana@loja.com.br")
        response = await _post(client, "/configuracao/empresa", {
            "empresa": "Invasor", "funil": "Funil", "pagina": "https://x.com.br/",
            "tenant": other,
        })  # fmt: skip
        assert response.status_code == 303
        # The change landed in the seller's own tenant, never in the one the form named.
        assert wired.registry.tenant(wired.tenant).name == "Invasor"
        assert wired.registry.tenant(other).name == "Tenant"
        assert other not in (await client.get("/configuracao?tenant=" + other)).text
        no_csrf = await client.post("/configuracao/provisionamento", data={})
        assert no_csrf.status_code == 403


async def test_an_operator_chooses_the_tenant(wired: Wired, console: Console) -> None:
    await console.accounts.create_user("op@trackai.com.br", "operator", None, "uma-senha-forte-1")
    async with console.client() as client:
        await sign_in(client, "op@trackai.com.br")
        fragment = await client.get("/configuracao/webhook")
        assert fragment.status_code == 404
        page = await client.get(f"/configuracao?tenant={wired.tenant}")
        assert page.status_code == 200 and "Empresa e funil" in page.text
        assert re.search(rf'name="tenant" value="{wired.tenant}"', page.text)


async def test_company_form_rejects_bad_checkout_domains() -> None:
    with pytest.raises(FormErrors) as refused:
        CompanyForm.parse("Loja", "Funil", "https://loja.com.br", "https://pay.kiwify.com.br")
    assert refused.value.errors["dominios"].startswith("Domínio inválido: https://pay")
