"""The customer 360 over faked services: every part renders, parts go missing (marked
partial) when a service is down or slow, and search finds by each kind of identifier."""

import time

import httpx
import pytest
from fastapi import FastAPI

from rapport_console.testing import CUSTOMER_ID, FakeServices

from .conftest import Login, form_token

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

    async def test_profile_answers_its_part_in_one_request_with_the_timeline_kind(
        self, login: Login, fakes: FakeServices
    ) -> None:
        client = await login("support")

        page = await client.get(PAGE, params={"kind": "orders"})

        asked = [r for r in fakes.requests if r.url.host == "profile.test"]
        assert [r.url.path for r in asked] == [f"{PAGE}/overview"]
        assert asked[0].url.params.get_list("type") == ["order.completed"]
        assert page.text.count('data-kind="orders"') == 3
        assert 'data-kind="support"' not in page.text

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
        # Five calls one after another would take 2.5 s.
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


def segment_lists(fakes: FakeServices) -> int:
    """How many times campaign was asked for its list of segments."""
    return sum(1 for r in fakes.requests if r.method == "GET" and r.url.path == "/segments")


class TestSegmentNames:
    async def test_the_list_of_segments_is_asked_once_for_many_pages(
        self, login: Login, fakes: FakeServices
    ) -> None:
        client = await login("marketer")

        pages = [await client.get(PAGE) for _ in range(3)]

        assert all("Big spenders" in page.text for page in pages)
        assert segment_lists(fakes) == 1

    async def test_a_segment_saved_here_shows_on_the_next_page(
        self, login: Login, fakes: FakeServices
    ) -> None:
        client = await login("marketer")
        token = form_token((await client.get("/customers")).text)
        rule = {"name": "In GB", "combine": "all", "field_0": "country", "op_0": "eq"}
        await client.get(PAGE)

        forged = await client.post("/segments", data={**rule, "value_0": "GB", "csrf_token": "x"})
        await client.get(PAGE)
        saved = await client.post("/segments", data={**rule, "value_0": "GB", "csrf_token": token})
        await client.get(PAGE)

        assert (forged.status_code, saved.status_code) == (403, 303)
        # Only a write that reached campaign makes the 360 ask for the list again.
        assert segment_lists(fakes) == 2

    async def test_a_list_that_did_not_come_is_asked_for_again(
        self, login: Login, fakes: FakeServices
    ) -> None:
        client = await login("marketer")

        with fakes.service_down("campaign"):
            await client.get(PAGE)
        page = await client.get(PAGE)

        assert "Big spenders" in page.text and 'data-testid="partial"' not in page.text


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
