"""Tickets, SLA, queues, known issues and similar tickets, on a real database (SQLite and
PostgreSQL); published events are read back from the outbox."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from rapport_events.base import Event
from rapport_events.db import SessionFactory, transaction
from rapport_events.pagination import BadCursor
from rapport_events.types import (
    LineItem,
    OrderCompleted,
    TicketOpened,
    TicketRated,
    TicketResolved,
    TicketSlaBreached,
    TicketUpdated,
)
from rapport_support.errors import Conflict, InvalidRequest
from rapport_support.products import projection as product_projection
from rapport_support.products import service as product_service
from rapport_support.settings import Settings
from rapport_support.tickets import service, sla, store
from rapport_support.tickets.models import (
    CommentCreate,
    LinkCreate,
    MergeRequest,
    RatingCreate,
    SlaPolicyUpdate,
    SupportTicket,
    TicketCreate,
    TicketDetail,
    TicketUpdate,
)
from rapport_support.unit_of_work import SqlSupportUnitOfWork

OPENED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Outbox = Callable[[SessionFactory], Awaitable[list[Event]]]


async def open_ticket(
    sessions: SessionFactory,
    settings: Settings,
    now: datetime = OPENED_AT,
    **fields: object,
) -> SupportTicket:
    values: dict[str, object] = {"customer_id": "cust-1", "subject": "Machine leaks water"}
    values.update(fields)
    async with transaction(sessions) as session:
        return await service.open_ticket(
            SqlSupportUnitOfWork(session, settings),
            settings,
            TicketCreate(**values),
            now=now,  # type: ignore[arg-type]
        )


async def update(
    sessions: SessionFactory,
    settings: Settings,
    ticket_id: str,
    now: datetime = OPENED_AT + timedelta(minutes=30),
    **fields: object,
) -> SupportTicket:
    async with transaction(sessions) as session:
        return await service.update_ticket(
            SqlSupportUnitOfWork(session, settings),
            settings,
            ticket_id,
            TicketUpdate(**fields),
            now=now,  # type: ignore[arg-type]
        )


async def comment(
    sessions: SessionFactory,
    settings: Settings,
    ticket_id: str,
    now: datetime = OPENED_AT + timedelta(minutes=10),
    **fields: object,
) -> None:
    values: dict[str, object] = {"body": "We are on it", "author": "grace"}
    values.update(fields)
    async with transaction(sessions) as session:
        await service.add_comment(
            SqlSupportUnitOfWork(session, settings),
            ticket_id,
            CommentCreate(**values),
            now=now,  # type: ignore[arg-type]
        )


async def detail(sessions: SessionFactory, settings: Settings, ticket_id: str) -> TicketDetail:
    async with transaction(sessions) as session:
        return await service.ticket_detail(SqlSupportUnitOfWork(session, settings), ticket_id)


class TestOpeningATicket:
    async def test_publishes_ticket_opened_with_the_ticket(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        ticket = await open_ticket(
            sessions,
            settings,
            priority="high",
            channel="phone",
            category="hardware",
            product_model="Barista X2",
        )

        [event] = await outbox(sessions)
        assert isinstance(event, TicketOpened)
        assert (event.customer_id, event.ticket_id) == ("cust-1", ticket.id)
        assert (event.priority, event.channel, event.category) == ("high", "phone", "hardware")
        assert event.product_model == "Barista X2"

    async def test_due_times_follow_the_priority_default(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings, priority="urgent")

        view = await detail(sessions, settings, ticket.id)
        assert view.first_response_due_at == OPENED_AT + timedelta(minutes=15)
        assert view.resolution_due_at == OPENED_AT + timedelta(hours=4)

    async def test_a_serial_number_the_customer_owns_fills_in_the_model(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await product_projection.record_order(
                session,
                settings,
                OrderCompleted(
                    customer_id="cust-1",
                    order_id="o-1",
                    revenue=Decimal(349),
                    items=(
                        LineItem(
                            product_id="bx2",
                            product_model="Barista X2",
                            price=Decimal(349),
                            serial_number="BX2-0042",
                        ),
                    ),
                ),
            )

        ticket = await open_ticket(sessions, settings, serial_number="bx2-0042")

        assert ticket.product_model == "Barista X2"


class TestComments:
    async def test_the_first_public_agent_answer_is_the_first_response(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        ticket = await open_ticket(sessions, settings)

        await comment(
            sessions,
            settings,
            ticket.id,
            now=OPENED_AT + timedelta(minutes=5),
            public=False,
            body="Internal: check stock",
        )
        assert (await detail(sessions, settings, ticket.id)).first_responded_at is None
        await comment(sessions, settings, ticket.id)

        view = await detail(sessions, settings, ticket.id)
        assert view.first_responded_at == OPENED_AT + timedelta(minutes=10)
        assert view.status == "open"
        assert [(c.public, c.author) for c in view.comments] == [(False, "grace"), (True, "grace")]
        updated = [e for e in await outbox(sessions) if isinstance(e, TicketUpdated)]
        assert [e.status for e in updated] == ["open"]

    async def test_a_customer_answer_reopens_a_pending_ticket(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings)
        await update(sessions, settings, ticket.id, status="pending")

        await comment(sessions, settings, ticket.id, author="ada", author_type="customer")

        assert (await detail(sessions, settings, ticket.id)).status == "open"

    async def test_a_closed_ticket_takes_no_comment(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings)
        await update(sessions, settings, ticket.id, status="closed")

        with pytest.raises(Conflict):
            await comment(sessions, settings, ticket.id)


class TestUpdatingATicket:
    async def test_resolving_publishes_updated_and_resolved(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        ticket = await open_ticket(
            sessions, settings, category="hardware", product_model="Barista X2"
        )

        await update(
            sessions,
            settings,
            ticket.id,
            status="resolved",
            resolution="Replaced the seal",
            assignee="grace",
        )

        events = (await outbox(sessions))[1:]
        assert [type(e) for e in events] == [TicketUpdated, TicketResolved]
        assert isinstance(events[0], TicketUpdated)
        assert events[0].changes == {
            "assignee": "grace",
            "resolution": "Replaced the seal",
            "status": "resolved",
        }
        assert isinstance(events[1], TicketResolved)
        assert (events[1].resolution, events[1].product_model) == (
            "Replaced the seal",
            "Barista X2",
        )
        assert (await detail(sessions, settings, ticket.id)).resolved_at is not None

    async def test_resolving_without_a_resolution_is_refused(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings)

        with pytest.raises(InvalidRequest, match="resolution"):
            await update(sessions, settings, ticket.id, status="resolved")

        assert (await detail(sessions, settings, ticket.id)).status == "new"

    async def test_a_closed_ticket_is_final(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings)
        await update(sessions, settings, ticket.id, status="closed")

        with pytest.raises(Conflict):
            await update(sessions, settings, ticket.id, status="open")

    async def test_no_change_publishes_nothing(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        ticket = await open_ticket(sessions, settings, priority="high")

        await update(sessions, settings, ticket.id, priority="high")

        assert len(await outbox(sessions)) == 1

    async def test_a_new_priority_moves_the_due_times(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings, priority="low")

        await update(sessions, settings, ticket.id, priority="urgent")

        view = await detail(sessions, settings, ticket.id)
        assert view.first_response_due_at == OPENED_AT + timedelta(minutes=15)


class TestRating:
    async def test_a_resolved_ticket_is_rated_once(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        ticket = await open_ticket(sessions, settings)
        await update(sessions, settings, ticket.id, status="resolved", resolution="Fixed")

        async with transaction(sessions) as session:
            await service.rate_ticket(
                SqlSupportUnitOfWork(session, settings),
                ticket.id,
                RatingCreate(rating=5, comment="Quick"),
            )
        with pytest.raises(Conflict, match="already"):
            async with transaction(sessions) as session:
                await service.rate_ticket(
                    SqlSupportUnitOfWork(session, settings), ticket.id, RatingCreate(rating=1)
                )

        rated = [e for e in await outbox(sessions) if isinstance(e, TicketRated)]
        assert [(e.rating, e.comment) for e in rated] == [(5, "Quick")]

    async def test_an_open_ticket_cannot_be_rated(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings)

        with pytest.raises(Conflict, match="resolved"):
            async with transaction(sessions) as session:
                await service.rate_ticket(
                    SqlSupportUnitOfWork(session, settings), ticket.id, RatingCreate(rating=4)
                )


class TestLinksAndMerges:
    async def test_a_link_shows_on_both_tickets_and_is_made_once(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        first = await open_ticket(sessions, settings)
        second = await open_ticket(sessions, settings, customer_id="cust-2")

        for _ in range(2):
            async with transaction(sessions) as session:
                await service.link_tickets(
                    SqlSupportUnitOfWork(session, settings),
                    second.id,
                    LinkCreate(ticket_id=first.id),
                )

        assert [link.ticket_id for link in (await detail(sessions, settings, first.id)).links] == [
            second.id
        ]
        assert [link.ticket_id for link in (await detail(sessions, settings, second.id)).links] == [
            first.id
        ]

    async def test_merging_closes_the_duplicate_and_moves_its_comments(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        kept = await open_ticket(sessions, settings)
        duplicate = await open_ticket(sessions, settings, subject="Water under the machine")
        await comment(
            sessions,
            settings,
            duplicate.id,
            body="Photo attached",
            author="ada",
            author_type="customer",
        )

        async with transaction(sessions) as session:
            await service.merge_ticket(
                SqlSupportUnitOfWork(session, settings),
                duplicate.id,
                MergeRequest(into_ticket_id=kept.id, actor="grace"),
            )

        closed = await detail(sessions, settings, duplicate.id)
        assert (closed.status, closed.duplicate_of) == ("closed", kept.id)
        target = await detail(sessions, settings, kept.id)
        assert "Photo attached" in [c.body for c in target.comments]
        assert [(link.ticket_id, link.kind) for link in target.links] == [
            (duplicate.id, "duplicate")
        ]
        last = (await outbox(sessions))[-1]
        assert isinstance(last, TicketUpdated)
        assert (last.ticket_id, last.status, last.changes["duplicate_of"]) == (
            duplicate.id,
            "closed",
            kept.id,
        )

    async def test_tickets_of_two_customers_are_not_merged(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        first = await open_ticket(sessions, settings)
        other = await open_ticket(sessions, settings, customer_id="cust-2")

        with pytest.raises(Conflict):
            async with transaction(sessions) as session:
                await service.merge_ticket(
                    SqlSupportUnitOfWork(session, settings),
                    other.id,
                    MergeRequest(into_ticket_id=first.id),
                )


class TestSlaBreaches:
    async def test_a_missed_first_response_is_recorded_and_published_once(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        ticket = await open_ticket(sessions, settings, priority="urgent")
        late = OPENED_AT + timedelta(minutes=16)

        for _ in range(2):
            async with transaction(sessions) as session:
                await sla.record_due_breaches(SqlSupportUnitOfWork(session, settings), now=late)

        breaches = (await detail(sessions, settings, ticket.id)).breaches
        assert [(b.target, b.due_at, b.breached_at) for b in breaches] == [
            ("first_response", OPENED_AT + timedelta(minutes=15), late)
        ]
        published = [e for e in await outbox(sessions) if isinstance(e, TicketSlaBreached)]
        assert [(e.ticket_id, e.target, e.priority) for e in published] == [
            (ticket.id, "first_response", "urgent")
        ]

    async def test_an_answered_and_resolved_ticket_never_breaches(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings, priority="urgent")
        await comment(sessions, settings, ticket.id, now=OPENED_AT + timedelta(minutes=5))
        await update(sessions, settings, ticket.id, status="resolved", resolution="Fixed")

        async with transaction(sessions) as session:
            await sla.record_due_breaches(
                SqlSupportUnitOfWork(session, settings), now=OPENED_AT + timedelta(days=3)
            )

        assert (await detail(sessions, settings, ticket.id)).breaches == []

    async def test_a_late_answer_between_two_checks_is_still_a_breach(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        ticket = await open_ticket(sessions, settings, priority="urgent")

        await comment(sessions, settings, ticket.id, now=OPENED_AT + timedelta(minutes=20))

        [breach] = (await detail(sessions, settings, ticket.id)).breaches
        assert breach.target == "first_response"

    async def test_a_policy_set_by_an_agent_replaces_the_default(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await sla.set_sla_policy(
                SqlSupportUnitOfWork(session, settings),
                settings,
                "normal",
                SlaPolicyUpdate(first_response_minutes=30, resolution_minutes=120),
            )
        ticket = await open_ticket(sessions, settings)

        view = await detail(sessions, settings, ticket.id)
        assert view.first_response_due_at == OPENED_AT + timedelta(minutes=30)
        assert view.resolution_due_at == OPENED_AT + timedelta(hours=2)

    async def test_a_resolution_target_shorter_than_first_response_is_refused(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        with pytest.raises(InvalidRequest):
            async with transaction(sessions) as session:
                await sla.set_sla_policy(
                    SqlSupportUnitOfWork(session, settings),
                    settings,
                    "low",
                    SlaPolicyUpdate(first_response_minutes=60, resolution_minutes=30),
                )


class TestAgentQueue:
    async def test_breached_tickets_come_first_then_the_nearest_due(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        low = await open_ticket(sessions, settings, priority="low", assignee="grace")
        high = await open_ticket(sessions, settings, priority="high", assignee="grace")
        urgent = await open_ticket(sessions, settings, priority="urgent", assignee="grace")
        await open_ticket(sessions, settings, priority="urgent", assignee="linus")
        done = await open_ticket(sessions, settings, assignee="grace")
        await update(sessions, settings, done.id, status="closed")
        now = OPENED_AT + timedelta(minutes=30)
        async with transaction(sessions) as session:
            await sla.record_due_breaches(SqlSupportUnitOfWork(session, settings), now=now)

        async with transaction(sessions) as session:
            queue = await service.agent_queue(
                SqlSupportUnitOfWork(session, settings), "grace", now=now
            )

        assert [t.id for t in queue.tickets] == [urgent.id, high.id, low.id]
        assert [t.breached for t in queue.tickets] == [True, False, False]
        assert queue.breached == 1
        assert queue.tickets[0].breaches[0].target == "first_response"


class TestSearch:
    async def test_filters_combine_and_pages_follow_the_cursor(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        made = []
        for minute in range(5):
            made.append(
                await open_ticket(
                    sessions,
                    settings,
                    now=OPENED_AT + timedelta(minutes=minute),
                    subject=f"Screen flickers #{minute}",
                    product_model="ZenBook 14",
                )
            )
        await open_ticket(sessions, settings, subject="Screen flickers", product_model="K1")
        await open_ticket(sessions, settings, subject="Noisy fan", product_model="ZenBook 14")
        where = store.TicketFilter(product_model_key="zenbook 14", text="FLICKER")

        pages, cursor = [], None
        while True:
            async with transaction(sessions) as session:
                page = await service.list_tickets(
                    SqlSupportUnitOfWork(session, settings), where, 2, cursor
                )
            pages.append([t.id for t in page.items])
            cursor = page.next_cursor
            if cursor is None:
                break

        assert [ticket_id for page in pages for ticket_id in page] == [t.id for t in reversed(made)]
        assert [len(page) for page in pages] == [2, 2, 1]

    async def test_a_made_up_cursor_is_refused(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        with pytest.raises(BadCursor):
            async with transaction(sessions) as session:
                await service.list_tickets(
                    SqlSupportUnitOfWork(session, settings), store.TicketFilter(), 10, "bm9wZQ"
                )


class TestKnownIssues:
    async def _history(self, sessions: SessionFactory, settings: Settings) -> list[SupportTicket]:
        history = [
            ("Machine leaks water from the tank", "hardware", "Replaced the water tank seal"),
            ("Water leaking under the machine", "hardware", "Replaced the water tank seal."),
            ("Tank drips water onto the counter", "hardware", "Tightened the drain valve"),
            ("Grinder makes a loud noise", "grinder", "Cleaned the burrs"),
            ("App will not pair", "connectivity", None),
        ]
        made = []
        for subject, category, resolution in history:
            ticket = await open_ticket(
                sessions, settings, subject=subject, category=category, product_model="Barista X2"
            )
            if resolution:
                await update(
                    sessions, settings, ticket.id, status="resolved", resolution=resolution
                )
            made.append(ticket)
        await open_ticket(
            sessions, settings, subject="Leaks water", category="hardware", product_model="K1"
        )
        return made

    async def test_the_most_frequent_categories_with_their_usual_fix(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        await self._history(sessions, settings)

        async with transaction(sessions) as session:
            uow = SqlSupportUnitOfWork(session, settings)
            issues = await product_service.known_issues(uow, settings, "barista x2")

        assert (issues.product_model, issues.tickets, issues.open_tickets) == ("Barista X2", 5, 1)
        top = issues.categories[0]
        assert (top.category, top.tickets, top.resolved, top.share) == ("hardware", 3, 3, 0.6)
        assert [(r.resolution, r.tickets) for r in top.resolutions] == [
            ("Replaced the water tank seal", 2),
            ("Tightened the drain valve", 1),
        ]
        assert [c.category for c in issues.categories] == ["hardware", "connectivity", "grinder"]

    async def test_similar_earlier_tickets_for_a_new_problem(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        made = await self._history(sessions, settings)

        async with transaction(sessions) as session:
            issues = await product_service.known_issues(
                SqlSupportUnitOfWork(session, settings),
                settings,
                "Barista X2",
                query="water is leaking from my machine",
            )

        similar_ids = [s.ticket.id for s in issues.similar]
        assert similar_ids[:2] == [made[1].id, made[0].id] or similar_ids[:2] == [
            made[0].id,
            made[1].id,
        ]
        assert made[3].id not in similar_ids, "the grinder ticket shares no words"
        assert all(0 < s.score <= 1 for s in issues.similar)

    async def test_a_tickets_similar_tickets_are_of_its_model(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        made = await self._history(sessions, settings)
        new = await open_ticket(
            sessions, settings, subject="Water leaks everywhere", product_model="Barista X2"
        )

        async with transaction(sessions) as session:
            similar = await service.similar_tickets(
                SqlSupportUnitOfWork(session, settings), settings, new.id, limit=3
            )

        assert similar and {s.ticket.id for s in similar} <= {t.id for t in made}
        assert similar[0].ticket.resolution is not None

    async def test_a_model_without_tickets_has_no_known_issues(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            issues = await product_service.known_issues(
                SqlSupportUnitOfWork(session, settings), settings, "Nothing 1", query="broken"
            )

        assert (issues.tickets, issues.categories, issues.similar) == (0, [], [])
