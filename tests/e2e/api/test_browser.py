"""Headless Debian Chromium (playwright with `executable_path`), every host but this server
closed: /docs renders the OpenAPI document, GraphiQL runs a query and shows its result."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

from tests.support.api import KEY, Api, send


def chromium() -> str:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("Debian chromium is not installed: `make test` installs it (apt-get)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(),
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def local_page(browser: Browser, api: Api, outside: list[str]) -> Page:
    """A page whose requests reach only the API server; any other is aborted and noted."""
    context = await browser.new_context(extra_http_headers={"Authorization": f"Bearer {KEY}"})
    here = urlsplit(api.url).netloc

    async def only_here(route: Route) -> None:
        if urlsplit(route.request.url).netloc == here:
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_here)
    return await context.new_page()


async def test_docs_and_graphiql_work_offline(api: Api, browser: Browser) -> None:
    ids = await send(api, 2, "ui")
    outside: list[str] = []
    page = await local_page(browser, api, outside)
    await page.goto(f"{api.url}/docs")
    await page.locator(".swagger-ui .info .title").filter(has_text="dispatcher").wait_for()
    await page.locator(".opblock-summary-path", has_text="/v1/campaigns").first.wait_for()

    query = '{ emailSends(batchId: "ui") { edges { node { id status } } } }'
    await page.goto(f"{api.url}/graphql#query={quote(query)}", wait_until="load")
    await page.locator(".graphiql-execute-button").click()
    result = page.locator(".result-window")
    await result.filter(has_text=ids[0]).wait_for()
    assert ids[1] in await result.inner_text()
    assert "QUEUED" in await result.inner_text()
    assert outside == []
