"""Every event about a customer on their timeline, once, and the partner disclosure ledger,
on a real database (SQLite and PostgreSQL)."""

from datetime import timedelta

from profile_testing import DAY, deliver, order, register

from rapport_events.db import SessionFactory
from rapport_events.types import (
    InteractionTracked,
    PartnerDataDisclosed,
    SocialReplySent,
    TicketOpened,
)
from rapport_profile.timeline import service as timeline_service
from rapport_profile.unit_of_work import SqlProfileUnitOfWork


class TestTimeline:
    async def test_any_event_lands_once_newest_first(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        ticket = TicketOpened(customer_id=ada, occurred_at=DAY, ticket_id="t-1", subject="Broken")
        await deliver(sessions, ticket, "e-1")
        await deliver(sessions, ticket, "e-1")
        await deliver(sessions, order(ada, "o-1", "10", DAY + timedelta(hours=1)), "e-2")

        async with sessions() as session:
            page = await timeline_service.read_page(
                SqlProfileUnitOfWork(session), ada, types=[], limit=10, cursor=None
            )
            tickets = await timeline_service.read_page(
                SqlProfileUnitOfWork(session), ada, types=["ticket.opened"], limit=10, cursor=None
            )

        assert [item.id for item in page.items] == ["e-2", "e-1"]
        assert page.items[1].data["subject"] == "Broken"
        assert [item.type for item in tickets.items] == ["rapport.ticket.opened.v2"]

    async def test_pages_follow_the_cursor_without_gaps(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        for n in range(5):
            event = InteractionTracked(
                customer_id=ada, occurred_at=DAY + timedelta(minutes=n), kind="page"
            )
            await deliver(sessions, event, f"e-{n}")

        seen, cursor = [], None
        async with sessions() as session:
            while True:
                page = await timeline_service.read_page(
                    SqlProfileUnitOfWork(session), ada, types=[], limit=2, cursor=cursor
                )
                seen += [item.id for item in page.items]
                if (cursor := page.next_cursor) is None:
                    break
        assert seen == ["e-4", "e-3", "e-2", "e-1", "e-0"]

    async def test_disclosures_come_from_partner_events(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        disclosed = PartnerDataDisclosed(
            customer_id=ada,
            partner_id="p-1",
            partner_name="Acme",
            partner_ref="ref-9",
            slices=("contact",),
            fields=("email",),
            consent_version=2,
        )
        await deliver(sessions, disclosed, "d-1")
        await deliver(sessions, disclosed, "d-1")

        async with sessions() as session:
            rows = await SqlProfileUnitOfWork(session).timeline.disclosures_of(ada)
        assert [(d.partner_name, d.slices, d.consent_version) for d in rows] == [
            ("Acme", ["contact"], 2)
        ]


class TestSocialReplies:
    async def test_a_reply_support_sent_is_on_the_customers_timeline(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        reply = SocialReplySent(
            customer_id=ada,
            mention_id="mnt-1",
            reply_id="rpl-1",
            platform="mastodon",
            handle="@ada",
            text="Yes, until 6pm!",
            author="pr:linus",
        )
        await deliver(sessions, reply, "e-reply")

        async with sessions() as session:
            page = await timeline_service.read_page(
                SqlProfileUnitOfWork(session),
                ada,
                types=["social.reply.sent"],
                limit=10,
                cursor=None,
            )
        [item] = page.items
        assert (item.id, item.type) == ("e-reply", "rapport.social.reply.sent.v2")
        assert item.data["text"] == "Yes, until 6pm!"
