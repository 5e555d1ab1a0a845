"""The support desk: the queue filters by status, priority, model and breach; a ticket
shows beside its customer's support context; only agents and admins work tickets."""

from rapport_console.testing import CUSTOMER_ID, FakeServices

from .conftest import Login


async def test_the_queue_passes_its_filters_to_support(login: Login, fakes: FakeServices) -> None:
    agent = await login("support")

    matching = await agent.get(
        "/tickets",
        params={
            "status": "open",
            "priority": "high",
            "product_model": "KT-200",
            "breached": "true",
        },
    )
    other = await agent.get("/tickets", params={"status": "closed"})

    assert 'href="/tickets/t-1"' in matching.text and "breached" in matching.text
    assert "No ticket matches" in other.text
    first = next(r for r in fakes.requests if r.url.path == "/tickets")
    assert dict(first.url.params) == {
        "limit": "50",
        "status": "open",
        "priority": "high",
        "product_model": "KT-200",
        "breached": "true",
    }


async def test_a_ticket_shows_its_customers_context_and_is_logged(login: Login) -> None:
    agent = await login("support")

    page = await agent.get("/tickets/t-1")

    assert page.status_code == 200
    assert "Water at the base" in page.text
    assert "Kettle 2 (KT-200), under warranty" in page.text
    officer = await login("privacy")
    log = (await officer.get("/access-log", params={"customer": CUSTOMER_ID})).text
    assert "<td>support</td><td>support</td>" in log and "<td>ticket</td>" in log


async def test_an_unknown_status_is_refused(login: Login) -> None:
    agent = await login("support")

    assert (await agent.get("/tickets", params={"status": "lost"})).status_code == 400


async def test_marketers_and_privacy_officers_do_not_work_tickets(login: Login) -> None:
    for role in ("marketer", "privacy"):
        client = await login(role)
        assert (await client.get("/tickets")).status_code == 403
        assert (await client.get("/tickets/t-1")).status_code == 403


async def test_an_unknown_ticket_is_404(login: Login) -> None:
    agent = await login("support")

    assert (await agent.get("/tickets/t-404")).status_code == 404
