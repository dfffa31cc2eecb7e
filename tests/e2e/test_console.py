"""The console in Debian's Chromium: a real console process (HTTP pages + its gRPC account API) on
free ports against a migrated test database; the account is created with `trackai user create`
as an operator would. Screenshots go to tests/artifacts/console/ (git-ignored)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from tests.e2e.conftest import ROOT, ServiceProcess, Stack
from tests.e2e.test_tracking_script import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
VENDOR = ROOT / "services" / "console" / "src" / "trackai_console" / "static" / "vendor"
PASSWORD = "senha-da-loja-2026"
SELLER = "dona@lojadaana.com.br"
TENANT = "8f14e45f-ceea-467f-a9e5-3b2f5e2c4a10"
SIZES = {"celular": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 800}}


def trackai(console: ServiceProcess, stack: Stack, *args: str, stdin: str = "") -> str:
    env = {**stack.env, "CONSOLE_GRPC_TARGET": f"127.0.0.1:{console.grpc_port}"}
    done = subprocess.run(
        [sys.executable, "-m", "trackai_cli.main", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def console(stack: Stack) -> ServiceProcess:
    assert (VENDOR / "htmx.min.js").exists(), "run `make console-assets` first"
    proc = stack.start("console")
    stack.wait_ready(proc)
    trackai(proc, stack, "user", "create", "--email", SELLER, "--role", "seller",
            "--tenant", TENANT, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    return proc


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def test_seller_signs_in_and_out(console: ServiceProcess, browser: Browser) -> None:
    for size, viewport in SIZES.items():
        context = await browser.new_context(viewport=viewport, locale="pt-BR")
        page = await context.new_page()
        await page.goto(console.http + "/")
        assert page.url.endswith("/entrar?proximo=/")
        await page.fill("#email", SELLER)
        await page.fill("#senha", "senha-errada-123")
        await page.click("button[type=submit]")
        await page.get_by_role("alert").wait_for()
        assert await page.get_by_role("alert").inner_text() == "E-mail ou senha incorretos."
        await shot(page, f"entrar-erro-{size}")

        await page.fill("#senha", PASSWORD)
        await page.click("button[type=submit]")
        await page.get_by_role("heading", name="Visão geral").wait_for()
        assert "vendedor" in await page.inner_text("main")
        assert await page.evaluate("typeof htmx") == "object"  # served from our static dir
        await shot(page, f"visao-geral-{size}")

        await page.get_by_role("button", name="Sair").click()
        await page.wait_for_url("**/entrar")
        await page.goto(console.http + "/")
        assert "/entrar" in page.url
        await context.close()
    assert os.path.getsize(ARTIFACTS / "visao-geral-celular.png") > 0
