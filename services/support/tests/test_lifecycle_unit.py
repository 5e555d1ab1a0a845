"""A merge, an erasure and the export across support's domains, against in-memory stores:
merged, every row of the duplicate is the survivor's; erased, nothing about the customer
stays but tombstones, and their sent events are taken back; exported, every domain's rows
about the customer and no one else's."""

from datetime import UTC, date, datetime, timedelta

from sqlmodel import SQLModel

from rapport_events.types import CustomerMerged
from rapport_support import lifecycle
from rapport_support.customers.models import (
    ErasedCustomer,
    SupportConsent,
    SupportCustomer,
    SupportHandle,
    SupportMergedCustomer,
)
from rapport_support.mentions.models import SupportMention, SupportMentionReply, SupportReplyAttempt
from rapport_support.products.models import SupportProduct
from rapport_support.testing import FakeSupportUnitOfWork
from rapport_support.tickets.models import (
    SupportSlaBreach,
    SupportTicket,
    SupportTicketComment,
    SupportTicketLink,
)

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)

# Every table that holds something about a customer.
PERSONAL: list[type[SQLModel]] = [
    SupportCustomer,
    SupportConsent,
    SupportHandle,
    SupportProduct,
    SupportTicket,
    SupportTicketComment,
    SupportTicketLink,
    SupportSlaBreach,
    SupportMention,
    SupportMentionReply,
    SupportReplyAttempt,
]


def everything_of(uow: FakeSupportUnitOfWork, customer_id: str) -> None:
    """A customer with a row in every domain: consent, handle, product, a ticket with a
    comment, a link and a breach, a mention with a reply and its delivery attempt."""
    ticket, mention, reply = f"t-{customer_id}", f"m-{customer_id}", f"r-{customer_id}"
    uow.rows.extend(
        [
            SupportCustomer(customer_id=customer_id, email=f"{customer_id}@example.com"),
            SupportConsent(
                customer_id=customer_id, purpose="support", granted=True, version=1, changed_at=NOW
            ),
            SupportHandle(
                platform="twitter",
                handle_key=customer_id,
                handle=f"@{customer_id}",
                customer_id=customer_id,
            ),
            SupportProduct(
                customer_id=customer_id,
                order_id=f"o-{customer_id}",
                line_no=1,
                product_id="p",
                product_model="Barista X2",
                purchased_at=NOW,
                warranty_ends_on=date(2029, 1, 1),
            ),
            SupportTicket(
                id=ticket,
                customer_id=customer_id,
                subject="Leaks",
                created_at=NOW,
                updated_at=NOW,
                first_response_due_at=NOW + timedelta(hours=4),
                resolution_due_at=NOW + timedelta(days=2),
            ),
            SupportTicketComment(ticket_id=ticket, author="grace", body="Hi", created_at=NOW),
            SupportTicketLink(ticket_id=ticket, linked_ticket_id=f"{ticket}-old", created_at=NOW),
            SupportSlaBreach(
                ticket_id=ticket,
                target="first_response",
                priority="normal",
                due_at=NOW,
                breached_at=NOW,
            ),
            SupportMention(
                id=mention,
                platform="twitter",
                handle=f"@{customer_id}",
                handle_key=customer_id,
                text="My Barista X2 leaks",
                posted_at=NOW,
                received_at=NOW,
                customer_id=customer_id,
                subject_id=customer_id,
                sentiment="negative",
                sentiment_score=-0.8,
                kind="complaint",
            ),
            SupportMentionReply(
                id=reply, mention_id=mention, text="Sorry", author="grace", created_at=NOW
            ),
            SupportReplyAttempt(reply_id=reply, attempt=1, attempted_at=NOW, duration_ms=3.0),
        ]
    )


def about(uow: FakeSupportUnitOfWork, customer_id: str) -> dict[str, int]:
    """How many rows of each table name the customer, directly or through a ticket, a
    mention or a reply of theirs."""
    tickets = {t.id for t in uow.rows.all(SupportTicket) if t.customer_id == customer_id}
    mentions = {m.id for m in uow.rows.all(SupportMention) if m.customer_id == customer_id}
    replies = {r.id for r in uow.rows.all(SupportMentionReply) if r.mention_id in mentions}
    found = {
        model.__name__: len(
            [
                row
                for row in uow.rows.all(model)
                if getattr(row, "customer_id", None) == customer_id
                or getattr(row, "ticket_id", None) in tickets
                or getattr(row, "mention_id", None) in mentions
                or getattr(row, "reply_id", None) in replies
            ]
        )
        for model in PERSONAL
    }
    return {table: count for table, count in found.items() if count}


def merged(survivor: str = "keep", duplicate: str = "dupe") -> CustomerMerged:
    return CustomerMerged(
        customer_id=survivor, merged_customer_id=duplicate, reason="email", occurred_at=NOW
    )


class TestMerge:
    async def test_every_domain_s_rows_of_the_duplicate_are_the_survivor_s(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        everything_of(uow, "dupe")
        before = about(uow, "dupe")

        await lifecycle.merge_customer(uow, merged())

        # The duplicate's consents go: the survivor's own decisions stand.
        assert about(uow, "keep") == {
            table: n for table, n in before.items() if table != "SupportConsent"
        }
        assert about(uow, "dupe") == {}
        [mention] = uow.rows.all(SupportMention)
        assert mention.subject_id == "keep"
        [alias] = uow.rows.all(SupportMergedCustomer)
        assert (alias.merged_id, alias.customer_id, alias.merged_at) == ("dupe", "keep", NOW)
        assert uow.outbox.events == []

    async def test_the_survivor_s_own_record_is_kept(self, uow: FakeSupportUnitOfWork) -> None:
        everything_of(uow, "dupe")
        uow.rows.add(SupportCustomer(customer_id="keep", email="keep@example.com"))

        await lifecycle.merge_customer(uow, merged())

        [survivor] = uow.rows.all(SupportCustomer)
        assert (survivor.customer_id, survivor.email) == ("keep", "keep@example.com")

    async def test_ids_merged_into_the_duplicate_follow_it(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        uow.rows.add(SupportMergedCustomer(merged_id="older", customer_id="dupe", merged_at=NOW))

        await lifecycle.merge_customer(uow, merged())

        assert {a.merged_id: a.customer_id for a in uow.rows.all(SupportMergedCustomer)} == {
            "older": "keep",
            "dupe": "keep",
        }

    async def test_merging_again_or_into_itself_changes_nothing(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        everything_of(uow, "dupe")
        await lifecycle.merge_customer(uow, merged())
        flushes = uow.flushes

        await lifecycle.merge_customer(uow, merged())
        await lifecycle.merge_customer(uow, merged("keep", "keep"))

        assert uow.flushes == flushes
        assert len(uow.rows.all(SupportMergedCustomer)) == 1

    async def test_into_an_erased_survivor_the_duplicate_is_erased(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        everything_of(uow, "dupe")
        uow.rows.add(ErasedCustomer(customer_id="keep", erased_at=NOW))

        await lifecycle.merge_customer(uow, merged())

        assert about(uow, "dupe") == about(uow, "keep") == {}
        assert {row.customer_id for row in uow.rows.all(ErasedCustomer)} == {"keep", "dupe"}
        assert uow.outbox.forgotten == ["dupe"]


class TestErasure:
    async def test_nothing_about_the_customer_stays_but_tombstones(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        everything_of(uow, "cust-1")
        everything_of(uow, "other")
        uow.rows.add(SupportMergedCustomer(merged_id="old", customer_id="cust-1", merged_at=NOW))
        other_before = about(uow, "other")

        await lifecycle.erase_customer(uow, "cust-1", NOW)

        assert about(uow, "cust-1") == {}
        assert uow.rows.all(SupportMergedCustomer) == []
        assert about(uow, "other") == other_before
        tombstones = {row.customer_id: row.erased_at for row in uow.rows.all(ErasedCustomer)}
        assert tombstones == {"cust-1": NOW, "old": NOW}
        assert uow.outbox.forgotten == ["cust-1", "old"]
        assert uow.outbox.events == []

    async def test_a_ticket_marked_a_duplicate_of_theirs_keeps_no_pointer(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        everything_of(uow, "cust-1")
        everything_of(uow, "other")
        uow.rows.get(SupportTicket, "t-other").duplicate_of = "t-cust-1"  # type: ignore[union-attr]

        await lifecycle.erase_customer(uow, "cust-1", NOW)

        kept = uow.rows.get(SupportTicket, "t-other")
        assert kept is not None and kept.duplicate_of is None

    async def test_erasing_twice_keeps_one_tombstone(self, uow: FakeSupportUnitOfWork) -> None:
        everything_of(uow, "cust-1")

        await lifecycle.erase_customer(uow, "cust-1", NOW)
        await lifecycle.erase_customer(uow, "cust-1", NOW + timedelta(days=1))

        [tombstone] = uow.rows.all(ErasedCustomer)
        assert (tombstone.customer_id, tombstone.erased_at) == ("cust-1", NOW)
        assert about(uow, "cust-1") == {}


class TestExport:
    async def test_it_holds_every_domain_s_rows_and_no_one_else_s(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        everything_of(uow, "cust-1")
        everything_of(uow, "other")
        uow.rows.add(SupportMergedCustomer(merged_id="old", customer_id="cust-1", merged_at=NOW))

        export = await lifecycle.export_customer(uow, "cust-1")

        assert {table: len(rows) for table, rows in export.records.items()} == {
            table: 1 for table in export.records
        }
        assert export.records["support_tickets"][0]["id"] == "t-cust-1"
        assert export.records["support_mentions"][0]["id"] == "m-cust-1"
        assert export.records["support_mention_replies"][0]["id"] == "r-cust-1"
        assert export.records["support_tickets"][0]["created_at"] == NOW.isoformat()
        assert "other" not in str(export.records)

    async def test_after_the_erasure_it_is_empty(self, uow: FakeSupportUnitOfWork) -> None:
        everything_of(uow, "cust-1")
        await lifecycle.erase_customer(uow, "cust-1", NOW)

        export = await lifecycle.export_customer(uow, "cust-1")

        assert export.records and all(rows == [] for rows in export.records.values())
