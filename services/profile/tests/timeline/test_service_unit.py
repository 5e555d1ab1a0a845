"""The timeline reads against in-memory stores: whose timeline an id reads (through merges,
a visitor's, none for an erased or unknown id), pages newest first with their cursor, the
type filter, and the disclosure ledger."""

from datetime import UTC, datetime, timedelta

import pytest

from rapport_profile.customers.models import Customer
from rapport_profile.errors import CustomerNotFound
from rapport_profile.gdpr.models import Erasure
from rapport_profile.identity.models import Identity
from rapport_profile.testing import FakeProfileUnitOfWork
from rapport_profile.timeline import service
from rapport_profile.timeline.models import Disclosure, TimelineEntry

DAY = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def an_entry(
    uow: FakeProfileUnitOfWork,
    event_id: str,
    customer_id: str = "ada",
    *,
    type: str = "rapport.page.viewed.v1",
    minutes: int = 0,
) -> None:
    uow.rows.add(
        TimelineEntry(
            id=event_id,
            customer_id=customer_id,
            subject_id=customer_id,
            type=type,
            source="/services/profile",
            occurred_at=DAY + timedelta(minutes=minutes),
            data={"n": event_id},
        )
    )


def a_disclosure(uow: FakeProfileUnitOfWork, event_id: str, partner_id: str, days: int) -> None:
    uow.rows.add(
        Disclosure(
            id=event_id,
            customer_id="ada",
            subject_id="ada",
            partner_id=partner_id,
            partner_ref=f"ref-{event_id}",
            purpose="partner_sharing",
            disclosed_at=DAY + timedelta(days=days),
        )
    )


async def ids(uow: FakeProfileUnitOfWork, customer_id: str = "ada", **query: object) -> list[str]:
    page = await service.read_page(
        uow,
        customer_id,
        types=query.get("types", []),  # type: ignore[arg-type]
        limit=query.get("limit", 10),  # type: ignore[arg-type]
        cursor=query.get("cursor"),  # type: ignore[arg-type]
    )
    return [item.id for item in page.items]


class TestWhoseTimeline:
    async def test_a_customer_without_events_has_an_empty_timeline(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        uow.rows.add(Customer(id="ada", email="ada@example.com"))

        page = await service.read_page(uow, "ada", types=[], limit=10, cursor=None)

        assert (page.customer_id, page.items, page.next_cursor) == ("ada", [], None)

    async def test_an_id_never_seen_is_not_found(self, uow: FakeProfileUnitOfWork) -> None:
        with pytest.raises(CustomerNotFound):
            await service.read_page(uow, "nobody", types=[], limit=10, cursor=None)

    async def test_a_merged_id_reads_its_survivors_timeline(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        uow.rows.add(Customer(id="ada", email="ada@example.com"))
        uow.rows.add(Identity(kind="alias", value="dupe", customer_id="ada"))
        an_entry(uow, "e-1")

        page = await service.read_page(uow, "dupe", types=[], limit=10, cursor=None)

        assert page.customer_id == "ada" and [item.id for item in page.items] == ["e-1"]

    async def test_a_visitor_known_only_from_tracking_has_a_timeline(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        an_entry(uow, "e-1", "visitor-1")

        assert await ids(uow, "visitor-1") == ["e-1"]

    async def test_a_visitor_known_only_by_an_identity_is_known(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        uow.rows.add(Identity(kind="anonymous_id", value="anon-1", customer_id="visitor-1"))

        assert await service.owner_of(uow, "visitor-1") == "visitor-1"

    async def test_an_erased_customer_has_no_timeline_even_through_an_alias(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        uow.rows.add(Erasure(customer_id="ada"))
        uow.rows.add(Identity(kind="alias", value="dupe", customer_id="ada"))
        an_entry(uow, "e-1")

        with pytest.raises(CustomerNotFound):
            await service.read_page(uow, "dupe", types=[], limit=10, cursor=None)


class TestPages:
    async def test_entries_come_newest_first_a_tie_broken_by_event_id(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        an_entry(uow, "e-a", minutes=5)
        an_entry(uow, "e-b", minutes=5)
        an_entry(uow, "e-c", minutes=10)
        an_entry(uow, "e-d", minutes=1)
        an_entry(uow, "other", "grace", minutes=7)

        assert await ids(uow) == ["e-c", "e-b", "e-a", "e-d"]

    async def test_the_cursor_continues_after_the_last_entry_shown(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        for n, minutes in enumerate([1, 5, 5, 5, 9]):
            an_entry(uow, f"e-{n}", minutes=minutes)

        first = await service.read_page(uow, "ada", types=[], limit=2, cursor=None)
        second = await service.read_page(uow, "ada", types=[], limit=2, cursor=first.next_cursor)
        third = await service.read_page(uow, "ada", types=[], limit=2, cursor=second.next_cursor)

        pages = [[item.id for item in page.items] for page in (first, second, third)]
        assert pages == [["e-4", "e-3"], ["e-2", "e-1"], ["e-0"]]
        assert third.next_cursor is None

    async def test_a_short_name_asks_every_version_of_the_type(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        an_entry(uow, "order-1", type="rapport.order.completed.v1", minutes=1)
        an_entry(uow, "view-1", minutes=2)
        an_entry(uow, "ticket-1", type="rapport.ticket.created.v1", minutes=3)

        assert await ids(uow, types=["order.completed,ticket.created"]) == [
            "ticket-1",
            "order-1",
        ]
        assert await ids(uow, types=["rapport.page.viewed.v1"]) == ["view-1"]

    async def test_an_item_carries_the_entrys_event(self, uow: FakeProfileUnitOfWork) -> None:
        an_entry(uow, "e-1", type="rapport.order.completed.v1")

        [item] = (await service.read_page(uow, "ada", types=[], limit=5, cursor=None)).items

        assert (item.type, item.source, item.occurred_at, item.data) == (
            "rapport.order.completed.v1",
            "/services/profile",
            DAY,
            {"n": "e-1"},
        )


class TestDisclosures:
    async def test_the_ledger_is_the_owners_latest_first(self, uow: FakeProfileUnitOfWork) -> None:
        uow.rows.add(Customer(id="ada", email="ada@example.com"))
        uow.rows.add(Identity(kind="alias", value="dupe", customer_id="ada"))
        a_disclosure(uow, "d-2", "p-2", days=1)
        a_disclosure(uow, "d-1", "p-1", days=3)
        a_disclosure(uow, "d-3", "p-3", days=1)

        found = await service.disclosures_about(uow, "dupe")

        assert [d.id for d in found] == ["d-1", "d-2", "d-3"]

    async def test_an_unknown_customer_has_no_ledger(self, uow: FakeProfileUnitOfWork) -> None:
        with pytest.raises(CustomerNotFound):
            await service.disclosures_about(uow, "nobody")
