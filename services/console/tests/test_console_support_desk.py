"""The support desk: the queue filters by status, priority, model and breach; a ticket
shows beside its customer's support context with its conversation; an agent assigns it,
answers, notes and resolves it; only agents and admins work tickets."""

import pytest

from rapport_console.testing import CUSTOMER_ID, FakeServices
from rapport_support.tickets.models import CommentCreate, TicketUpdate

from .conftest import Login, form_token, writes

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration

TICKET = "/tickets/t-1"


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


class TestWorkingATicket:
    async def test_an_agent_assigns_answers_and_resolves(
        self, login: Login, fakes: FakeServices
    ) -> None:
        agent = await login("support")
        token = form_token((await agent.get(TICKET)).text)

        assigned = await agent.post(f"{TICKET}/assign", data={"csrf_token": token})
        answered = await agent.post(
            f"{TICKET}/comments", data={"csrf_token": token, "body": "A new seal is on its way."}
        )
        noted = await agent.post(
            f"{TICKET}/comments",
            data={"csrf_token": token, "body": "Batch 7 seals", "internal": "true"},
        )
        resolved = await agent.post(
            f"{TICKET}/status",
            data={"csrf_token": token, "status": "resolved", "resolution": "Seal replaced"},
        )

        for reply in (assigned, answered, noted, resolved):
            assert reply.status_code == 303 and reply.headers["location"] == TICKET
        patches = writes(fakes, "PATCH", TICKET)
        assert [body for _, body in patches] == [
            {"assignee": "support"},
            {"status": "resolved", "resolution": "Seal replaced"},
        ]
        comments = [body for _, body in writes(fakes, "POST", f"{TICKET}/comments")]
        assert [(c["body"], c["public"], c["author"]) for c in comments] == [
            ("A new seal is on its way.", True, "support"),
            ("Batch 7 seals", False, "support"),
        ]
        for body in comments:
            CommentCreate.model_validate(body)
        for _, body in patches:
            TicketUpdate.model_validate(body)
        page = (await agent.get(TICKET)).text
        assert 'data-testid="ticket-status">resolved<' in page
        assert "Batch 7 seals" in page and "internal note" in page

    async def test_another_agent_can_be_named_and_each_action_is_logged(
        self, login: Login, fakes: FakeServices
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get(TICKET)).text)

        await admin.post(f"{TICKET}/assign", data={"csrf_token": token, "assignee": "grace"})

        assert writes(fakes, "PATCH") == [(TICKET, {"assignee": "grace"})]
        log = (await admin.get("/access-log", params={"customer": CUSTOMER_ID})).text
        assert "<td>admin</td><td>admin</td>" in log and "<td>ticket-assign</td>" in log

    @pytest.mark.parametrize(
        ("action", "form", "message"),
        [
            ("status", {"status": "resolved"}, "say how the ticket was resolved"),
            ("status", {"status": "lost"}, "Invalid input: status"),
            ("comments", {"body": "   "}, "the comment is empty"),
        ],
    )
    async def test_bad_input_is_a_form_error_that_asks_nothing(
        self, login: Login, fakes: FakeServices, action: str, form: dict[str, str], message: str
    ) -> None:
        agent = await login("support")
        token = form_token((await agent.get(TICKET)).text)

        reply = await agent.post(f"{TICKET}/{action}", data={"csrf_token": token, **form})

        assert reply.status_code == 400 and message in reply.text
        assert writes(fakes) == []

    async def test_what_support_refuses_is_shown_with_its_reason(
        self, login: Login, fakes: FakeServices
    ) -> None:
        agent = await login("support")
        token = form_token((await agent.get(TICKET)).text)
        fakes.world.ticket["status"] = "closed"

        reply = await agent.post(f"{TICKET}/comments", data={"csrf_token": token, "body": "Hi"})
        missing = await agent.post("/tickets/t-404/assign", data={"csrf_token": token})

        assert reply.status_code == 409 and "ticket t-1 is closed" in reply.text
        assert missing.status_code == 404
        assert 'data-testid="work-ticket"' not in (await agent.get(TICKET)).text

    async def test_marketers_and_privacy_officers_change_nothing(
        self, login: Login, fakes: FakeServices
    ) -> None:
        for role in ("marketer", "privacy"):
            client = await login(role)
            token = form_token((await client.get("/customers")).text)
            for action, form in (
                ("assign", {}),
                ("comments", {"body": "hello"}),
                ("status", {"status": "closed"}),
            ):
                reply = await client.post(f"{TICKET}/{action}", data={"csrf_token": token, **form})
                assert reply.status_code == 403
        assert writes(fakes) == []

    async def test_a_form_without_its_token_changes_nothing(
        self, login: Login, fakes: FakeServices
    ) -> None:
        agent = await login("support")

        reply = await agent.post(f"{TICKET}/status", data={"status": "closed"})

        assert reply.status_code == 403
        assert writes(fakes) == []
