"""Privacy: a privacy officer exports a customer and erases them after confirming; other
roles cannot, and a forged or unconfirmed form erases nothing."""

import json

import pytest

from rapport_console.testing import CUSTOMER_ID, FakeServices

from .conftest import Login, form_token

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration

PAGE = f"/customers/{CUSTOMER_ID}"


def deletes(fakes: FakeServices) -> list[str]:
    return [str(r.url) for r in fakes.requests if r.method == "DELETE"]


class TestExport:
    async def test_the_officer_downloads_everything_and_the_export_is_logged(
        self, login: Login
    ) -> None:
        officer = await login("privacy")

        reply = await officer.get(f"{PAGE}/export")

        assert reply.status_code == 200
        assert "attachment" in reply.headers["content-disposition"]
        export = json.loads(reply.text)
        assert export["records"]["customers"][0]["email"] == "ada@example.com"
        assert "support" in export["services"]
        log = (await officer.get("/access-log", params={"customer": CUSTOMER_ID})).text
        assert "<td>export</td>" in log

    async def test_a_marketer_cannot_export(self, login: Login) -> None:
        marketer = await login("marketer")

        assert (await marketer.get(f"{PAGE}/export")).status_code == 403
        assert 'data-testid="export"' not in (await marketer.get(PAGE)).text


class TestErase:
    async def test_after_confirming_the_officer_sees_each_service_complete(
        self, login: Login, fakes: FakeServices
    ) -> None:
        officer = await login("privacy")
        page = await officer.get(PAGE)

        reply = await officer.post(
            f"{PAGE}/erase", data={"csrf_token": form_token(page.text), "confirm": CUSTOMER_ID}
        )

        assert reply.status_code == 200
        assert 'data-testid="erasure-status">pending<' in reply.text
        assert 'hx-trigger="every 1s"' in reply.text  # the page polls until complete
        assert deletes(fakes) == [f"http://profile.test:18001/customers/{CUSTOMER_ID}"]
        status = await officer.get(f"{PAGE}/erasure")
        assert 'data-testid="erasure-status">completed<' in status.text
        assert "every 1s" not in status.text
        for service in ("profile", "campaign", "support", "partner-share"):
            assert f"<td>{service}</td>" in status.text

    async def test_without_confirmation_nothing_is_erased(
        self, login: Login, fakes: FakeServices
    ) -> None:
        officer = await login("privacy")
        page = await officer.get(PAGE)

        reply = await officer.post(
            f"{PAGE}/erase", data={"csrf_token": form_token(page.text), "confirm": "yes"}
        )

        assert reply.status_code == 400
        assert deletes(fakes) == []

    async def test_a_forged_form_erases_nothing(self, login: Login, fakes: FakeServices) -> None:
        officer = await login("privacy")

        reply = await officer.post(
            f"{PAGE}/erase", data={"csrf_token": "forged", "confirm": CUSTOMER_ID}
        )

        assert reply.status_code == 403
        assert deletes(fakes) == []

    async def test_a_support_agent_cannot_erase(self, login: Login, fakes: FakeServices) -> None:
        agent = await login("support")
        page = await agent.get(PAGE)

        reply = await agent.post(
            f"{PAGE}/erase", data={"csrf_token": form_token(page.text), "confirm": CUSTOMER_ID}
        )

        assert reply.status_code == 403
        assert deletes(fakes) == []
        assert 'data-testid="erase"' not in page.text
