"""The console in Debian's Chromium: an operator logs in, finds a customer and reads the
360, whose spend chart Chart.js draws from the console's own files, with no request
leaving this machine; a marketer creates, previews and launches a campaign and watches its
funnel; an agent works a ticket and answers a mention; an admin deletes a partner,
creates an operator, disables and enables them again, who then logs in, and reads it all
in the audit log. Screenshots go to var/screenshots/ as test artifacts."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from playwright.async_api import expect

from rapport_console.main import create_app
from rapport_console.settings import DEVELOPMENT_PASSWORD
from rapport_console.testing import CUSTOMER_ID, MENTION_ID, FakeServices, fake_settings
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


async def logged_in(browser: Any, console_url: str, username: str, password: str = "") -> Any:
    """A page of a new browser context, logged in as `username`."""
    page = await browser.new_page(viewport={"width": 1300, "height": 900})
    await page.goto(f"{console_url}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password or DEVELOPMENT_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{console_url}/customers")
    return page


async def test_a_marketer_creates_previews_and_launches_a_campaign(
    console_url: str, browser: Any
) -> None:
    page = await logged_in(browser, console_url, "marketer")
    await page.goto(f"{console_url}/campaigns")
    await page.get_by_test_id("new-campaign").click()
    await page.wait_for_url(f"{console_url}/campaigns/new")

    await page.fill("[data-testid=campaign-name]", "Winter boots")
    await page.select_option("[data-testid=campaign-segment]", "seg-vip")
    await page.fill("[data-testid=campaign-subject]", "{{ customer.first_name }}, boots")
    await page.fill("[data-testid=campaign-body]", "Hello {{ customer.first_name }}")
    await page.screenshot(path=SCREENSHOTS / "console-campaign-new.png", full_page=True)
    await page.get_by_test_id("save-campaign").click()
    await page.wait_for_url(f"{console_url}/campaigns/cmp-new")
    await expect(page.get_by_test_id("campaign-status")).to_have_text("draft")

    await page.fill("[data-testid=preview-customer]", "ada@example.com")
    await page.get_by_test_id("preview").click()
    await expect(page.get_by_test_id("preview-subject")).to_have_text("Ada, the winter sale is on")
    await page.screenshot(path=SCREENSHOTS / "console-campaign-preview.png", full_page=True)

    await page.get_by_test_id("launch").click()
    await page.wait_for_url(f"{console_url}/campaigns/cmp-new")
    await expect(page.get_by_test_id("campaign-status")).to_have_text("sending")
    await page.locator("#chart-funnel[data-drawn=true]").wait_for()
    bars = await page.evaluate(
        "() => Chart.getChart(document.querySelector('#chart-funnel')).data.datasets[0].data"
    )
    assert bars == [50, 10, 40, 38, 20, 9, 4]
    await page.screenshot(path=SCREENSHOTS / "console-campaign-funnel.png", full_page=True)
    await page.close()


async def test_an_agent_works_a_ticket_and_answers_a_mention(
    console_url: str, browser: Any
) -> None:
    page = await logged_in(browser, console_url, "support")
    await page.goto(f"{console_url}/tickets/t-1")

    await page.fill("[data-testid=assignee]", "grace")
    await page.get_by_test_id("assign").click()
    await expect(page.get_by_test_id("ticket-assignee")).to_have_text("grace")
    await page.fill("[data-testid=comment-body]", "A new seal is on its way.")
    await page.get_by_test_id("add-comment").click()
    await expect(page.get_by_test_id("comments")).to_contain_text("A new seal is on its way.")
    await page.select_option("[data-testid=new-status]", "resolved")
    await page.fill("[data-testid=resolution]", "Seal replaced")
    await page.get_by_test_id("set-status").click()
    await expect(page.get_by_test_id("ticket-status")).to_have_text("resolved")
    await expect(page.get_by_test_id("ticket-resolution")).to_have_text("Seal replaced")
    await page.screenshot(path=SCREENSHOTS / "console-ticket-worked.png", full_page=True)

    await page.goto(f"{console_url}/mentions")
    await page.get_by_role("link", name="my new kettle leaks").click()
    await page.wait_for_url(f"{console_url}/mentions/{MENTION_ID}")
    await page.fill("[data-testid=reply-text]", "Sorry! A new seal is on its way.")
    await page.get_by_test_id("send-reply").click()
    await expect(page.get_by_test_id("replies")).to_contain_text("Sorry! A new seal")
    await expect(page.get_by_test_id("reply-status")).to_have_text("pending")
    await page.screenshot(path=SCREENSHOTS / "console-mention-reply.png", full_page=True)
    await page.close()


async def test_an_admin_deletes_a_partner_and_creates_disables_and_enables_an_operator(
    console_url: str, browser: Any
) -> None:
    page = await logged_in(browser, console_url, "admin")
    await page.goto(f"{console_url}/partners/p-1")
    await page.get_by_test_id("delete-partner").click()  # without the name: refused
    assert "type the partner" in await page.locator("p.error").inner_text()
    await page.go_back()
    await page.fill("[data-testid=delete-confirm]", "Acme Travel")
    await page.get_by_test_id("delete-partner").click()
    await page.wait_for_url(f"{console_url}/partners")
    await expect(page.get_by_test_id("partners")).not_to_contain_text("Acme Travel")

    await page.get_by_role("link", name="Operators").click()
    await page.wait_for_url(f"{console_url}/admin/operators")
    await page.fill("[data-testid=new-username]", "grace")
    await page.select_option("[data-testid=new-role]", "marketer")
    await page.fill("[data-testid=new-password]", "a long enough password")
    await page.get_by_test_id("create-operator").click()
    await expect(page.get_by_test_id("operator-grace")).to_contain_text("created here by admin")
    await page.get_by_test_id("disable-grace").click()
    await expect(page.get_by_test_id("operator-grace")).to_contain_text("disabled")
    await page.get_by_test_id("enable-grace").click()
    await expect(page.get_by_test_id("operator-grace")).to_contain_text("active")
    await page.screenshot(path=SCREENSHOTS / "console-operators.png", full_page=True)

    grace = await logged_in(browser, console_url, "grace", "a long enough password")
    await expect(grace.get_by_test_id("operator")).to_have_text("grace · Marketer")
    await grace.close()

    await page.get_by_role("link", name="Audit log").click()
    await page.wait_for_url(f"{console_url}/admin/audit")
    actions = page.get_by_test_id("audit-entry").locator("td:nth-child(4)")
    await expect(actions).to_have_text(
        [
            "operator-enable",
            "operator-disable",
            "operator-create",
            "partner-delete",
            "partner-delete",
        ]
    )
    await page.select_option("[data-testid=audit-action]", "partner-delete")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_test_id("audit-entry")).to_have_count(2)
    await page.screenshot(path=SCREENSHOTS / "console-audit-log.png", full_page=True)
    await page.close()
