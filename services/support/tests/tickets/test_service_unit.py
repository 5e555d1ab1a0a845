"""The tickets use cases against in-memory stores: SLA clocks and breaches, the status
rules, merges, ratings, the agent's queue, and the events each change publishes."""

from datetime import UTC, date, datetime, timedelta

import pytest

from rapport_events.types import (
    TicketOpened,
    TicketRated,
    TicketResolved,
    TicketSlaBreached,
    TicketUpdated,
)
from rapport_support.customers.models import ErasedCustomer, SupportMergedCustomer
from rapport_support.errors import Conflict, InvalidRequest, NotFound
from rapport_support.products.models import SupportProduct
from rapport_support.settings import Settings
from rapport_support.testing import FakeSupportUnitOfWork
from rapport_support.tickets import service, sla
from rapport_support.tickets.models import (
    CommentCreate,
    LinkCreate,
    MergeRequest,
    RatingCreate,
    SlaPolicyUpdate,
    SupportSlaBreach,
    SupportTicket,
    SupportTicketComment,
    TicketCreate,
    TicketUpdate,
)
from rapport_support.tickets.store import TicketFilter

OPENED_AT = datetime(2027, 3, 1, 9, tzinfo=UTC)


async def a_ticket(
    uow: FakeSupportUnitOfWork, settings: Settings, **fields: object
) -> SupportTicket:
    values: dict[str, object] = {"customer_id": "cust-1", "subject": "Machine leaks water"}
    values.update(fields)
    return await service.open_ticket(uow, settings, TicketCreate(**values), now=OPENED_AT)  # type: ignore[arg-type]


async def answer(
    uow: FakeSupportUnitOfWork, ticket_id: str, minutes: int, **fields: object
) -> None:
    values: dict[str, object] = {"body": "We are on it", "author": "grace"}
    values.update(fields)
    when = OPENED_AT + timedelta(minutes=minutes)
    await service.add_comment(uow, ticket_id, CommentCreate(**values), now=when)  # type: ignore[arg-type]


async def change(
    uow: FakeSupportUnitOfWork, settings: Settings, ticket_id: str, minutes: int, **fields: object
) -> SupportTicket:
    when = OPENED_AT + timedelta(minutes=minutes)
    return await service.update_ticket(uow, settings, ticket_id, TicketUpdate(**fields), now=when)  # type: ignore[arg-type]


class TestOpening:
    async def test_due_times_come_from_the_priority_and_the_opening_is_published(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        ticket = await a_ticket(uow, settings, priority="high")

        assert ticket.first_response_due_at == OPENED_AT + timedelta(minutes=60)
        assert ticket.resolution_due_at == OPENED_AT + timedelta(minutes=1_440)
        [opened] = uow.outbox.published(TicketOpened)
        assert (opened.ticket_id, opened.customer_id, opened.priority) == (
            ticket.id,
            "cust-1",
            "high",
        )

    async def test_a_configured_policy_wins_over_the_settings(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        update = SlaPolicyUpdate(first_response_minutes=5, resolution_minutes=30)
        await sla.set_sla_policy(uow, settings, "low", update)

        ticket = await a_ticket(uow, settings, priority="low")

        assert ticket.first_response_due_at == OPENED_AT + timedelta(minutes=5)
        policies = {p.priority: p for p in await sla.sla_policies(uow, settings)}
        assert (policies["low"].configured, policies["urgent"].configured) == (True, False)
        assert policies["urgent"].first_response_minutes == 15

    async def test_a_resolution_target_shorter_than_the_first_response_is_refused(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        update = SlaPolicyUpdate(first_response_minutes=60, resolution_minutes=30)

        with pytest.raises(InvalidRequest):
            await sla.set_sla_policy(uow, settings, "low", update)

    async def test_a_merged_customer_s_ticket_goes_to_the_survivor(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        uow.rows.add(
            SupportMergedCustomer(merged_id="dupe", customer_id="cust-1", merged_at=OPENED_AT)
        )

        ticket = await a_ticket(uow, settings, customer_id="dupe")

        assert ticket.customer_id == "cust-1"

    async def test_an_erased_customer_gets_no_ticket(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        uow.rows.add(ErasedCustomer(customer_id="cust-1", erased_at=OPENED_AT))

        with pytest.raises(Conflict, match="erased"):
            await a_ticket(uow, settings)
        assert (uow.rows.all(SupportTicket), uow.outbox.events) == ([], [])

    async def test_the_serial_number_finds_the_product_model(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        uow.rows.add(
            SupportProduct(
                customer_id="cust-1",
                order_id="o1",
                line_no=0,
                product_id="sku-x2",
                product_model="Barista X2",
                serial_number="BX2-0042",
                purchased_at=OPENED_AT,
                warranty_ends_on=date(2030, 3, 1),
            )
        )

        ticket = await a_ticket(uow, settings, serial_number="bx2-0042")

        assert (ticket.product_model, ticket.product_model_key) == ("Barista X2", "barista x2")


class TestStatus:
    async def test_resolving_needs_a_resolution_and_publishes_the_resolution(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        ticket = await a_ticket(uow, settings)
        with pytest.raises(InvalidRequest, match="needs a resolution"):
            await change(uow, settings, ticket.id, 30, status="resolved")

        await change(uow, settings, ticket.id, 30, status="resolved", resolution="New seal")

        assert (ticket.status, ticket.resolved_at) == (
            "resolved",
            OPENED_AT + timedelta(minutes=30),
        )
        [updated] = uow.outbox.published(TicketUpdated)
        assert updated.changes == {"resolution": "New seal", "status": "resolved"}
        [resolved] = uow.outbox.published(TicketResolved)
        assert resolved.resolution == "New seal"

    @pytest.mark.parametrize(
        ("fields", "why"),
        [
            ({"status": "new"}, "back to new"),
            ({"status": None}, "cannot be null"),
            ({"subject": "   "}, "must not be blank"),
            ({"resolution": "early"}, "when the ticket is resolved"),
        ],
    )
    async def test_refused_changes_publish_nothing(
        self, uow: FakeSupportUnitOfWork, settings: Settings, fields: dict[str, object], why: str
    ) -> None:
        ticket = await a_ticket(uow, settings)
        await answer(uow, ticket.id, 5)
        published = len(uow.outbox.events)

        with pytest.raises(InvalidRequest, match=why):
            await change(uow, settings, ticket.id, 30, **fields)
        assert len(uow.outbox.events) == published

    async def test_a_closed_ticket_is_final(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        ticket = await a_ticket(uow, settings)
        await change(uow, settings, ticket.id, 30, status="closed")

        with pytest.raises(Conflict, match="closed"):
            await change(uow, settings, ticket.id, 40, priority="low")
        with pytest.raises(Conflict):
            await answer(uow, ticket.id, 40)

    async def test_a_new_priority_moves_the_due_times_from_the_opening(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        ticket = await a_ticket(uow, settings)

        await change(uow, settings, ticket.id, 30, priority="urgent")

        assert ticket.first_response_due_at == OPENED_AT + timedelta(minutes=15)
        changes = uow.outbox.published(TicketUpdated)[0].changes
        assert changes["first_response_due_at"] == (OPENED_AT + timedelta(minutes=15)).isoformat()

    async def test_an_unknown_ticket_is_not_found(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        with pytest.raises(NotFound):
            await change(uow, settings, "nope", 1, priority="low")


class TestComments:
    async def test_an_agent_s_first_public_answer_stops_the_clock_and_opens_the_ticket(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        ticket = await a_ticket(uow, settings)

        await answer(uow, ticket.id, 10, public=False)
        assert (ticket.status, ticket.first_responded_at) == ("new", None)
        await answer(uow, ticket.id, 20)

        assert (ticket.status, ticket.first_responded_at) == (
            "open",
            OPENED_AT + timedelta(minutes=20),
        )
        assert [e.changes.get("status") for e in uow.outbox.published(TicketUpdated)] == ["open"]
        assert len(await uow.tickets.comments_of(ticket.id)) == 2

    async def test_the_customer_answering_a_pending_ticket_reopens_it(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        ticket = await a_ticket(uow, settings)
        await change(uow, settings, ticket.id, 5, status="pending")

        await answer(uow, ticket.id, 30, author="ada", author_type="customer")

        assert ticket.status == "open"


class TestBreaches:
    async def test_a_late_first_answer_is_a_breach_recorded_and_published_once(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        ticket = await a_ticket(uow, settings, priority="urgent")

        await answer(uow, ticket.id, 20)
        await sla.record_due_breaches(uow, now=OPENED_AT + timedelta(minutes=30))

        [breach] = uow.rows.all(SupportSlaBreach)
        assert (breach.target, breach.due_at) == (
            "first_response",
            OPENED_AT + timedelta(minutes=15),
        )
        [published] = uow.outbox.published(TicketSlaBreached)
        assert (published.target, published.priority) == ("first_response", "urgent")

    async def test_the_monitor_records_each_missed_target_once(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        late = await a_ticket(uow, settings, priority="urgent")
        answered = await a_ticket(uow, settings, priority="urgent")
        await answer(uow, answered.id, 5)
        at = OPENED_AT + timedelta(hours=5)

        first = await sla.record_due_breaches(uow, now=at)
        again = await sla.record_due_breaches(uow, now=at + timedelta(hours=1))

        assert sorted((b.ticket_id == late.id, b.target) for b in first) == [
            (False, "resolution"),
            (True, "first_response"),
            (True, "resolution"),
        ]
        assert again == []
        assert len(uow.outbox.published(TicketSlaBreached)) == 3

    async def test_the_queue_puts_breached_tickets_first_then_the_nearest_due(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        low = await a_ticket(uow, settings, priority="low", assignee="grace")
        high = await a_ticket(uow, settings, priority="high", assignee="grace")
        urgent = await a_ticket(uow, settings, priority="urgent", assignee="grace")
        await a_ticket(uow, settings, priority="urgent", assignee="alan")

        queue = await service.agent_queue(uow, "grace", now=OPENED_AT + timedelta(minutes=30))

        assert [t.id for t in queue.tickets] == [urgent.id, high.id, low.id]
        assert queue.breached == 1


class TestMergingAndLinking:
    async def test_a_duplicate_is_folded_into_the_other_ticket(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        kept = await a_ticket(uow, settings)
        duplicate = await a_ticket(uow, settings, subject="Leaking again")
        await answer(uow, duplicate.id, 5, body="Seen it")

        target = await service.merge_ticket(
            uow,
            duplicate.id,
            MergeRequest(into_ticket_id=kept.id, actor="grace"),
            now=OPENED_AT + timedelta(minutes=10),
        )

        assert target is kept
        assert (duplicate.status, duplicate.duplicate_of) == ("closed", kept.id)
        bodies = [c.body for c in uow.rows.where(SupportTicketComment, lambda c: True)]
        assert bodies[0] == "Seen it" and bodies[1].startswith("Merged ticket")
        assert all(c.ticket_id == kept.id for c in uow.rows.all(SupportTicketComment))
        detail = await service.ticket_detail(uow, kept.id)
        assert [(link.ticket_id, link.kind) for link in detail.links] == [
            (duplicate.id, "duplicate")
        ]

    async def test_tickets_of_two_customers_are_not_merged(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        mine = await a_ticket(uow, settings)
        theirs = await a_ticket(uow, settings, customer_id="cust-2")

        with pytest.raises(Conflict, match="same customer"):
            await service.merge_ticket(uow, mine.id, MergeRequest(into_ticket_id=theirs.id))

    async def test_linking_twice_keeps_one_link_and_a_ticket_is_not_linked_to_itself(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        first, second = await a_ticket(uow, settings), await a_ticket(uow, settings)

        for _ in range(2):
            await service.link_tickets(uow, second.id, LinkCreate(ticket_id=first.id))
        with pytest.raises(InvalidRequest):
            await service.link_tickets(uow, first.id, LinkCreate(ticket_id=first.id))

        assert len(await uow.tickets.links_of(first.id)) == 1


class TestRating:
    async def test_a_resolved_ticket_is_rated_once(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        ticket = await a_ticket(uow, settings)
        with pytest.raises(Conflict, match="after it was resolved"):
            await service.rate_ticket(uow, ticket.id, RatingCreate(rating=4))
        await change(uow, settings, ticket.id, 30, status="resolved", resolution="Fixed")

        await service.rate_ticket(uow, ticket.id, RatingCreate(rating=5, comment="Quick"))
        with pytest.raises(Conflict, match="already"):
            await service.rate_ticket(uow, ticket.id, RatingCreate(rating=1))

        [rated] = uow.outbox.published(TicketRated)
        assert (rated.rating, rated.comment, ticket.rating) == (5, "Quick", 5)


class TestListing:
    async def test_filters_and_pages_newest_first(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        made = []
        for n in range(5):
            made.append(
                await service.open_ticket(
                    uow,
                    settings,
                    TicketCreate(
                        customer_id="cust-1",
                        subject=f"Screen FLICKERS {n}",
                        product_model="ZenBook 14",
                    ),
                    now=OPENED_AT + timedelta(minutes=n),
                )
            )
        await a_ticket(uow, settings, subject="Other")
        where = TicketFilter(product_model_key="zenbook 14", text="flicker")

        first = await service.list_tickets(uow, where, 2, None)
        second = await service.list_tickets(uow, where, 2, first.next_cursor)

        assert [t.id for t in first.items] == [made[4].id, made[3].id]
        assert [t.id for t in second.items] == [made[2].id, made[1].id]
