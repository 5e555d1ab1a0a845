"""The products use case against in-memory stores: a model's known issues, its most frequent
ticket categories with their usual resolutions. (The earlier tickets closest to a new problem
are ranked with scikit-learn, whose import alone takes seconds: `tickets/test_service.py`
covers them on both databases.)"""

from datetime import UTC, datetime, timedelta

import pytest

from rapport_support.errors import InvalidRequest
from rapport_support.products import service
from rapport_support.settings import Settings
from rapport_support.testing import FakeSupportUnitOfWork
from rapport_support.tickets import service as tickets
from rapport_support.tickets.models import SupportTicket, TicketCreate

OPENED_AT = datetime(2027, 3, 1, 9, tzinfo=UTC)
HISTORY = [
    ("Machine leaks water from the tank", "hardware", "Replaced the water tank seal"),
    ("Water leaking under the machine", "Hardware", "replaced the water  tank seal."),
    ("Tank drips water onto the counter", "hardware", "Tightened the drain valve"),
    ("Grinder makes a loud noise", "grinder", "Cleaned the burrs"),
    ("App will not pair", None, None),
]


async def a_ticket(
    uow: FakeSupportUnitOfWork,
    settings: Settings,
    subject: str,
    category: str | None = None,
    product_model: str = "Barista X2",
    minutes: int = 0,
) -> SupportTicket:
    data = TicketCreate(  # type: ignore[call-arg]
        customer_id="cust-1", subject=subject, category=category, product_model=product_model
    )
    return await tickets.open_ticket(
        uow, settings, data, now=OPENED_AT + timedelta(minutes=minutes)
    )


async def history(uow: FakeSupportUnitOfWork, settings: Settings) -> list[SupportTicket]:
    """Five Barista X2 tickets (four resolved, the last open) and one of another model."""
    made = []
    for minutes, (subject, category, resolution) in enumerate(HISTORY):
        ticket = await a_ticket(uow, settings, subject, category, minutes=minutes)
        if resolution:
            ticket.status, ticket.resolution = "resolved", resolution
        made.append(ticket)
    await a_ticket(uow, settings, "Leaks water", "hardware", product_model="K1")
    return made


class TestKnownIssues:
    async def test_the_most_frequent_categories_with_their_usual_fix(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        await history(uow, settings)

        issues = await service.known_issues(uow, settings, "  barista   X2 ")

        assert (issues.product_model, issues.tickets, issues.open_tickets) == ("Barista X2", 5, 1)
        top = issues.categories[0]
        assert (top.category, top.tickets, top.resolved, top.share) == ("hardware", 3, 3, 0.6)
        # One resolution however it was typed, in the words it was first written in.
        assert [(r.resolution, r.tickets) for r in top.resolutions] == [
            ("Replaced the water tank seal", 2),
            ("Tightened the drain valve", 1),
        ]
        assert [c.category for c in issues.categories] == ["hardware", "grinder", "uncategorised"]
        assert issues.similar == []

    async def test_duplicates_do_not_count(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        made = await history(uow, settings)
        made[1].duplicate_of = made[0].id

        issues = await service.known_issues(uow, settings, "Barista X2")

        assert issues.tickets == 4
        assert (issues.categories[0].tickets, issues.categories[0].share) == (2, 0.5)

    async def test_the_limit_keeps_the_most_frequent(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        await history(uow, settings)

        issues = await service.known_issues(uow, settings, "Barista X2", limit=1)

        assert [c.category for c in issues.categories] == ["hardware"]

    async def test_only_the_newest_tickets_of_the_corpus_are_read(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        await history(uow, settings)
        narrow = settings.model_copy(update={"similarity_corpus_limit": 2})

        issues = await service.known_issues(uow, narrow, "Barista X2")

        assert issues.tickets == 2
        assert {c.category for c in issues.categories} == {"grinder", "uncategorised"}

    async def test_a_model_without_tickets_has_none(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        issues = await service.known_issues(uow, settings, "Nothing 1", query="broken")

        assert (issues.product_model, issues.tickets, issues.open_tickets) == ("Nothing 1", 0, 0)
        assert (issues.categories, issues.similar) == ([], [])

    async def test_a_blank_model_is_refused(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        with pytest.raises(InvalidRequest, match="must not be blank"):
            await service.known_issues(uow, settings, "   ")
