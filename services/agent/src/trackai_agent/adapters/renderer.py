"""Headless Chromium (Playwright) for pages whose pixel is injected by JavaScript. Every request
the page makes goes through the same address guard as the fetcher, so a page cannot make the
browser reach private addresses."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Route, async_playwright

from trackai_agent.adapters.web import AddressGuard
from trackai_agent.domain.model import DependencyError, FetchRefused

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
)


class ChromiumRenderer:
    def __init__(
        self, executable: str, guard: AddressGuard, timeout_s: float = 15.0, settle_ms: int = 500
    ) -> None:
        self._executable = executable
        self._guard = guard
        self._timeout_s = timeout_s
        self._settle_ms = settle_ms

    async def render(self, url: str) -> str:
        host = urlsplit(url).hostname or url
        try:
            async with asyncio.timeout(self._timeout_s), async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=self._executable, args=list(CHROMIUM_ARGS)
                )
                try:
                    page = await browser.new_page()

                    async def guarded(route: Route) -> None:
                        try:
                            await self._guard.resolve(route.request.url)
                        except (FetchRefused, DependencyError):
                            await route.abort("blockedbyclient")
                            return
                        await route.continue_()

                    await page.route("**/*", guarded)
                    await page.goto(url, wait_until="load")
                    await page.wait_for_timeout(self._settle_ms)
                    return await page.content()
                finally:
                    await browser.close()
        except TimeoutError:
            raise DependencyError(host, "a página não terminou de carregar no navegador") from None
        except PlaywrightError as exc:
            raise DependencyError(host, f"o navegador falhou ({exc.message[:120]})") from None
