"""The console in Debian's Chromium: an operator logs in, finds a customer and reads the
360, whose spend chart Chart.js draws from the console's own files, with no request
leaving this machine. Screenshots go to var/screenshots/ as test artifacts."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from playwright.async_api import expect

from rapport_console.main import create_app
from rapport_console.settings import DEVELOPMENT_PASSWORD
from rapport_console.testing import CUSTOMER_ID, FakeServices, fake_settings
from rapport_events.testing.broker import free_port
from rapport_events.testing.browser import ONLY_THIS_MACHINE, chromium
from rapport_events.testing.replicas import serving

pytestmark = pytest.mark.processes

SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"


@pytest.fixture
async def console_url(tmp_path: Path, fakes: FakeServices) -> AsyncIterator[str]:
    app: FastAPI = create_app(
        fake_settings(database_url=f"sqlite:///{tmp_path}/console.db"),
        transport=fakes.transport(),
    )
    async with serving(app, free_port(), timeout=30, lifespan="on") as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium([ONLY_THIS_MACHINE]) as browser:
        yield browser


async def test_an_agent_logs_in_and_reads_a_customer_360_offline(
    console_url: str, browser: Any
) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    elsewhere: list[str] = []
    console_host = urlsplit(console_url).netloc

    def note(request: Any) -> None:
        if (
            not request.url.startswith(("data:", "blob:"))
            and urlsplit(request.url).netloc != console_host
        ):
            elsewhere.append(request.url)

    page.on("request", note)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    await page.goto(f"{console_url}/customers/{CUSTOMER_ID}")
    assert "/login" in page.url
    await page.fill("input[name=username]", "privacy")
    await page.fill("input[name=password]", DEVELOPMENT_PASSWORD)
    await page.screenshot(path=SCREENSHOTS / "console-login.png")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{console_url}/customers/{CUSTOMER_ID}")

    await page.get_by_test_id("customer-name").wait_for()
    assert await page.get_by_test_id("customer-name").inner_text() == "Ada Lovelace"
    # Chart.js drew the spend chart: a chart object on the canvas, and coloured pixels.
    await page.locator("#chart-spend[data-drawn=true]").wait_for()
    bars = await page.evaluate(
        """() => {
            const chart = Chart.getChart(document.querySelector('#chart-spend'));
            return chart.data.datasets[0].data;
        }"""
    )
    assert bars == [100.0, 120.0, 200.0]
    painted = await page.evaluate(
        """() => {
            const canvas = document.querySelector('#chart-spend');
            const context = canvas.getContext('2d');
            const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let coloured = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) coloured++;
            return coloured;
        }"""
    )
    assert painted > 1000
    # The privacy officer sees their own view in the access log on the page.
    assert "customer-360" in await page.get_by_test_id("access-log").inner_text()
    await page.screenshot(path=SCREENSHOTS / "console-customer-360.png", full_page=True)

    # htmx swaps the timeline for one kind without leaving the page.
    # (Locators, not wait_for_function: the page's policy forbids eval, and so it stays.)
    await page.select_option("[data-testid=timeline-kind]", "orders")
    await expect(page.locator("#timeline li:not([data-kind=orders])")).to_have_count(0)
    await expect(page.locator("#timeline li[data-kind=orders]")).to_have_count(3)
    assert page.url == f"{console_url}/customers/{CUSTOMER_ID}"

    assert elsewhere == [], f"the console reached out to {elsewhere}"
    await page.close()


async def test_a_support_agent_is_refused_analytics_in_the_browser(
    console_url: str, browser: Any
) -> None:
    page = await browser.new_page()
    await page.goto(f"{console_url}/login")
    await page.fill("input[name=username]", "support")
    await page.fill("input[name=password]", DEVELOPMENT_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{console_url}/customers")

    reply = await page.goto(f"{console_url}/analytics")

    assert reply.status == 403
    assert "may not see this page" in await page.get_by_test_id("forbidden").inner_text()
    await page.close()


async def test_a_marketer_sees_the_member_count_change_while_editing(
    console_url: str, browser: Any
) -> None:
    page = await browser.new_page(viewport={"width": 1200, "height": 800})
    await page.goto(f"{console_url}/login?next=/segments/new")
    await page.fill("input[name=username]", "marketer")
    await page.fill("input[name=password]", DEVELOPMENT_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{console_url}/segments/new")

    await page.select_option("[data-testid=field-0]", "country")
    await page.select_option("[data-testid=op-0]", "eq")
    await page.fill("[data-testid=value-0]", "GB")
    await expect(page.get_by_test_id("count-value")).to_have_text("42")
    await page.fill("[data-testid=value-0]", "FR")
    await expect(page.get_by_test_id("count-value")).to_have_text("7")
    await page.screenshot(path=SCREENSHOTS / "console-segment-builder.png")

    await page.fill("[data-testid=segment-name]", "French customers")
    await page.get_by_test_id("save-segment").click()
    await page.wait_for_url(f"{console_url}/segments/seg-new")

    # Analytics: every chart drawn by Chart.js, each beside its table.
    await page.goto(f"{console_url}/analytics?by=gender")
    for chart in ("trends", "forecast", "tiers", "channels"):
        await page.locator(f"#chart-{chart}[data-drawn=true]").wait_for()
    await page.screenshot(path=SCREENSHOTS / "console-analytics.png", full_page=True)
    await page.close()
