"""The customer 360 over faked services: every part renders, parts go missing (marked
partial) when a service is down or slow, and search finds by each kind of identifier."""

import time

import httpx
import pytest
from fastapi import FastAPI

from rapport_console.testing import CUSTOMER_ID, FakeServices

from .conftest import Login

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration

PAGE = f"/customers/{CUSTOMER_ID}"


class TestTheWholePage:
    async def test_shows_every_part_from_the_four_services(self, login: Login) -> None:
        client = await login("support")

        page = await client.get(PAGE)

        assert page.status_code == 200
        html = page.text
        assert 'data-testid="customer-name">Ada Lovelace<' in html
        assert "favourite_colour" in html  # custom traits
        assert "unsubscribe-link" in html  # consent history with its source
        assert 'data-testid="tier">gold<' in html
        assert "534" in html  # RFM
        # Spend per month: the three orders of the timeline, one per month.
        assert "<th>2026-09</th><td>100.0</td><td>1</td>" in html
        assert "<th>2026-11</th><td>200.0</td><td>1</td>" in html
        assert 'data-chart="' in html and "chart-spend" in html
        assert "KT-200" in html and "Kettle leaks at the base" in html
        assert "Big spenders" in html
        assert "Acme Travel" in html and "contact, demographics" in html
        assert 'data-testid="partial"' not in html

    async def test_asks_the_four_services_with_their_bearer_token(
        self, login: Login, fakes: FakeServices
    ) -> None:
        client = await login("support")

        await client.get(PAGE)

        hosts = {request.url.host for request in fakes.requests}
        assert hosts == {"profile.test", "campaign.test", "support.test", "partner-share.test"}

    async def test_an_unknown_customer_is_404(self, login: Login) -> None:
        client = await login("support")

        page = await client.get("/customers/no-such-customer")

        assert page.status_code == 404
        assert "No such customer" in page.text

    async def test_a_malformed_id_is_refused(self, login: Login) -> None:
        client = await login("support")

        page = await client.get("/customers/bad%20id%3Cscript%3E")

        assert page.status_code == 400


class TestPartialPages:
    async def test_profile_down_leaves_the_rest_and_names_profile(
        self, login: Login, fakes: FakeServices
    ) -> None:
        client = await login("support")

        with fakes.service_down("profile"):
            page = await client.get(PAGE)

        assert page.status_code == 200
        html = page.text
        assert 'data-testid="partial"' in html and "<strong>profile</strong>" in html
        assert "Ada Lovelace" in html  # support's own copy stands in
        assert "from support's copy" in html
        assert "Kettle leaks at the base" in html and "Acme Travel" in html
        assert "unsubscribe-link" not in html  # consents are profile's

    async def test_a_slow_service_costs_one_timeout_and_the_calls_run_in_parallel(
        self, login: Login, fakes: FakeServices, console: FastAPI
    ) -> None:
        client = await login("support")
        fakes.slow |= {"profile", "campaign", "support", "partner-share"}
        timeout = console.state.settings.service_timeout_s

        started = time.perf_counter()
        page = await client.get(PAGE)
        elapsed = time.perf_counter() - started

        assert page.status_code == 200
        assert "did not answer within 0.5 s" in page.text
        # Nine calls one after another would take 4.5 s.
        assert elapsed < 3 * timeout

    async def test_every_service_down_still_renders(
        self, login: Login, fakes: FakeServices
    ) -> None:
        client = await login("support")
        fakes.down |= {"profile", "campaign", "support", "partner-share"}

        page = await client.get(PAGE)

        assert page.status_code == 200
        for service in ("profile", "campaign", "support", "partner-share"):
            assert f"<strong>{service}</strong>" in page.text


class TestTimelineFilter:
    async def test_a_kind_shows_only_its_events(self, login: Login, fakes: FakeServices) -> None:
        client = await login("support")

        fragment = await client.get(f"{PAGE}/timeline", params={"kind": "orders"})

        assert fragment.status_code == 200
        assert fragment.text.count('data-kind="orders"') == 3
        assert 'data-kind="support"' not in fragment.text
        (timeline,) = [r for r in fakes.requests if r.url.path.endswith("/timeline")]
        assert timeline.url.params.get_list("type") == ["order.completed"]

    async def test_an_unknown_kind_is_refused(self, login: Login) -> None:
        client = await login("support")

        fragment = await client.get(f"{PAGE}/timeline", params={"kind": "gossip"})

        assert fragment.status_code == 400


class TestSearch:
    async def _search(
        self, client: httpx.AsyncClient, fakes: FakeServices, text: str
    ) -> httpx.QueryParams:
        page = await client.get("/customers", params={"q": text})
        assert page.status_code == 200
        assert f'href="/customers/{CUSTOMER_ID}"' in page.text
        (search,) = [r for r in fakes.requests if r.url.path == "/customers"]
        fakes.requests.clear()
        return search.url.params

    async def test_by_each_kind_of_identifier(self, login: Login, fakes: FakeServices) -> None:
        client = await login("support")

        assert (await self._search(client, fakes, "Ada@Example.com"))["email"] == "ada@example.com"
        assert (await self._search(client, fakes, "+44 20 7946 0000"))["phone"] == "+442079460000"
        assert (await self._search(client, fakes, "shop:c-1815"))["external_id"] == "shop:c-1815"
        assert (await self._search(client, fakes, "ada lovelace"))["q"] == "ada lovelace"

    async def test_no_match_says_so(self, login: Login) -> None:
        client = await login("support")

        page = await client.get("/customers", params={"q": "nobody"})

        assert "No customer matches" in page.text
