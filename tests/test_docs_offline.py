"""`/docs` and `/redoc` of every service work in a real browser with no network but the app."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Route

from rapport_events.testing.broker import free_port
from rapport_events.testing.browser import chromium

# A browser and a server of its own: not a unit test.
pytestmark = pytest.mark.integration

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _apps() -> dict[str, FastAPI]:
    from rapport_campaign.main import create_app as campaign
    from rapport_partner_share.main import create_app as partner_share
    from rapport_profile.main import create_app as profile
    from rapport_sales.main import create_app as sales
    from rapport_support.main import create_app as support

    # /docs, /redoc and /openapi.json need neither the database nor the broker: the apps
    # are served without their lifespan.
    return {
        "profile": profile(),
        "campaign": campaign(),
        "support": support(),
        "partner-share": partner_share(),
        "sales": sales(),
    }


@dataclass
class Served:
    name: str
    url: str
    openapi: dict


@pytest.fixture(scope="module")
def served() -> Iterator[list[Served]]:
    """The four apps on free ports, over real HTTP."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []
    result: list[Served] = []
    for name, app in _apps().items():
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        thread = threading.Thread(target=server.run, name=f"docs-{name}", daemon=True)
        thread.start()
        servers.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                openapi = httpx.get(f"{url}/openapi.json", timeout=1).json()
                break
            except httpx.HTTPError:
                threading.Event().wait(0.05)
        else:
            raise TimeoutError(f"{name} did not serve /openapi.json")
        result.append(Served(name, url, openapi))
    yield result
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def operation_count(openapi: dict) -> int:
    """Operations as the pages list them: once under each of an operation's tags."""
    return sum(
        max(1, len(operation.get("tags", [])))
        for item in openapi["paths"].values()
        for operation in item.values()
    )


@pytest.fixture
async def browser():
    async with chromium() as browser:
        yield browser


async def offline_page(browser, blocked: list[str]):  # type: ignore[no-untyped-def]
    """A page whose every request to anything but this machine fails, as with no network."""
    page = await browser.new_page()

    async def only_local(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_local)
    return page


class TestDocsOffline:
    async def test_swagger_ui_lists_every_operation(self, served, browser) -> None:  # type: ignore[no-untyped-def]
        for service in served:
            blocked: list[str] = []
            page = await offline_page(browser, blocked)
            await page.goto(f"{service.url}/docs")
            operations = page.locator(".opblock")
            expected = operation_count(service.openapi)
            await operations.nth(expected - 1).wait_for(timeout=30_000)
            assert await operations.count() == expected, service.name
            summaries = await page.locator(".opblock-summary-description").all_inner_texts()
            first_path = next(iter(service.openapi["paths"].values()))
            first_summary = next(iter(first_path.values()))["summary"]
            assert first_summary in summaries, service.name
            assert await page.locator(".info .title").inner_text() != ""
            # The "Authorize" button lists the declared schemes.
            assert await page.locator(".btn.authorize").count() == 1, service.name
            assert blocked == [], f"{service.name} /docs reached out to {blocked}"
            await page.close()

    async def test_redoc_renders_every_operation(self, served, browser) -> None:  # type: ignore[no-untyped-def]
        for service in served:
            blocked: list[str] = []
            page = await offline_page(browser, blocked)
            await page.goto(f"{service.url}/redoc")
            sections = page.locator("[data-section-id^='operation/']")
            expected = operation_count(service.openapi)
            await sections.nth(expected - 1).wait_for(state="attached", timeout=30_000)
            assert await sections.count() == expected, service.name
            assert blocked == [], f"{service.name} /redoc reached out to {blocked}"
            await page.close()
