"""Social mentions and replies on a real database (SQLite and PostgreSQL): linking handles,
sentiment, tickets for complaints, reply delivery bookkeeping."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from rapport_events.base import Event
from rapport_events.db import SessionFactory, transaction
from rapport_events.types import (
    CustomerRegistered,
    CustomerUpdated,
    SocialMentionReceived,
    TicketOpened,
    TicketUpdated,
)
from rapport_support.customers import projection as customer_projection
from rapport_support.customers import service as customer_service
from rapport_support.errors import InvalidRequest
from rapport_support.mentions import service
from rapport_support.mentions.models import MentionCreate, ReplyCreate, SupportMention
from rapport_support.mentions.store import SqlMentionStore
from rapport_support.settings import Settings, SocialWebhook
from rapport_support.tickets import service as ticket_service
from rapport_support.tickets.store import SqlTicketStore
from rapport_support.unit_of_work import SqlSupportUnitOfWork

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
Outbox = Callable[[SessionFactory], Awaitable[list[Event]]]


@pytest.fixture
def hooked(settings: Settings) -> Settings:
    hook = SocialWebhook(url="http://127.0.0.1:9/replies", secret="s" * 32)  # type: ignore[arg-type]
    return settings.model_copy(
        update={"social_webhooks": {"twitter": hook}, "webhook_max_attempts": 3}
    )


async def register_ada(sessions: SessionFactory, settings: Settings) -> None:
    async with transaction(sessions) as session:
        await customer_projection.apply_registration(
            session,
            settings,
            CustomerRegistered(
                customer_id="cust-1",
                email="ada@example.com",
                first_name="Ada",
                last_name="Lovelace",
                social_handles={"twitter": "@Ada_L"},
            ),
        )


async def ingest(
    sessions: SessionFactory, settings: Settings, **fields: object
) -> tuple[SupportMention, bool]:
    values: dict[str, object] = {"platform": "twitter", "handle": "@ada_l"}
    values.update(fields)
    async with transaction(sessions) as session:
        return await service.ingest_mention(
            SqlSupportUnitOfWork(session, settings),
            settings,
            MentionCreate(**values),
            now=NOW,  # type: ignore[arg-type]
        )


class TestIngestingAMention:
    async def test_a_complaint_from_a_known_handle_becomes_a_ticket_of_the_customer(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        await register_ada(sessions, settings)

        mention, created = await ingest(
            sessions,
            settings,
            handle="ADA_L",
            text="My Barista X2 broke after two days. Terrible!",
            url="https://twitter.com/ada_l/status/1",
            external_id="1",
        )

        assert created
        assert (mention.customer_id, mention.sentiment, mention.kind) == (
            "cust-1",
            "negative",
            "complaint",
        )
        assert mention.status == "ticketed" and mention.ticket_id is not None
        events = await outbox(sessions)
        assert [type(e) for e in events] == [SocialMentionReceived, TicketOpened]
        received, opened = events
        assert isinstance(received, SocialMentionReceived) and isinstance(opened, TicketOpened)
        assert (received.customer_id, received.linked, received.sentiment) == (
            "cust-1",
            True,
            "negative",
        )
        assert (opened.customer_id, opened.channel, opened.ticket_id) == (
            "cust-1",
            "social",
            mention.ticket_id,
        )
        assert opened.priority == "high"

    async def test_a_question_from_an_unknown_handle_gets_a_ticket_under_the_handle(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        mention, _ = await ingest(
            sessions, settings, handle="@stranger", text="How do I descale the Barista X2?"
        )

        assert (mention.customer_id, mention.kind) == (None, "question")
        received = (await outbox(sessions))[0]
        assert isinstance(received, SocialMentionReceived)
        assert (received.customer_id, received.linked) == ("social:twitter:stranger", False)
        async with transaction(sessions) as session:
            ticket = await SqlTicketStore(session).get_ticket(mention.ticket_id or "")
        assert ticket is not None and ticket.customer_id == "social:twitter:stranger"

    async def test_praise_opens_no_ticket(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        mention, _ = await ingest(sessions, settings, text="Love my new ZenBook, great screen")

        assert (mention.sentiment, mention.kind, mention.ticket_id) == ("positive", "praise", None)
        assert [type(e) for e in await outbox(sessions)] == [SocialMentionReceived]

    async def test_the_same_post_twice_is_stored_once(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        first, _ = await ingest(sessions, settings, text="Broken again!", external_id="77")
        again, created = await ingest(sessions, settings, text="Broken again!", external_id="77")

        assert (again.id, created) == (first.id, False)
        assert len(await outbox(sessions)) == 2

    async def test_a_handle_learnt_later_links_the_earlier_mentions(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        mention, _ = await ingest(sessions, settings, handle="@grace_h", text="Screen is dead :(")
        await register_ada(sessions, settings)

        async with transaction(sessions) as session:
            await customer_projection.apply_customer_update(
                session,
                settings,
                CustomerUpdated(
                    customer_id="cust-1",
                    changes={"social_handles": {"twitter": "@Grace_H"}},
                ),
            )

        async with transaction(sessions) as session:
            context = await customer_service.get_support_context(
                SqlSupportUnitOfWork(session, settings), "cust-1"
            )
        assert [m.id for m in context.mentions] == [mention.id]
        assert [t.id for t in context.tickets] == [mention.ticket_id]
        [linked] = [e for e in await outbox(sessions) if isinstance(e, TicketUpdated)]
        assert (linked.customer_id, linked.ticket_id) == ("cust-1", mention.ticket_id)
        assert linked.changes == {
            "customer_id": "cust-1",
            "previous_customer_id": service.social_subject("twitter", "grace_h"),
        }

    async def test_a_handle_that_moves_again_does_not_move_linked_tickets(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        mention, _ = await ingest(sessions, settings, handle="@grace_h", text="Screen is dead :(")
        await register_ada(sessions, settings)
        async with transaction(sessions) as session:
            await customer_projection.apply_customer_update(
                session,
                settings,
                CustomerUpdated(
                    customer_id="cust-1", changes={"social_handles": {"twitter": "@grace_h"}}
                ),
            )
            await customer_projection.apply_registration(
                session,
                settings,
                CustomerRegistered(
                    customer_id="cust-2",
                    email="grace@example.com",
                    first_name="Grace",
                    last_name="Hopper",
                    social_handles={"twitter": "@grace_h"},
                ),
            )

        async with transaction(sessions) as session:
            context = await customer_service.get_support_context(
                SqlSupportUnitOfWork(session, settings), "cust-1"
            )
        assert [t.id for t in context.tickets] == [mention.ticket_id]
        linked = [e for e in await outbox(sessions) if isinstance(e, TicketUpdated)]
        assert [e.customer_id for e in linked] == ["cust-1"]

    @pytest.mark.parametrize(
        "fields",
        [
            {"platform": "twit ter", "text": "hi"},
            {"text": "   "},
            {"text": "hi", "url": "javascript:alert(1)"},
            {"handle": "@", "text": "hi"},
        ],
    )
    def test_bad_input_is_refused(self, fields: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            MentionCreate(**{"platform": "twitter", "handle": "@a", **fields})  # type: ignore[arg-type]


class TestReplying:
    async def test_a_reply_waits_for_delivery_and_answers_the_ticket(
        self, sessions: SessionFactory, hooked: Settings
    ) -> None:
        await register_ada(sessions, hooked)
        mention, _ = await ingest(sessions, hooked, text="Broken. Awful.")

        async with transaction(sessions) as session:
            reply = await service.reply_to_mention(
                SqlSupportUnitOfWork(session, hooked),
                hooked,
                mention.id,
                ReplyCreate(text="Sorry! DM us", author="pr:linus"),
                now=NOW + timedelta(minutes=3),
            )

        assert (reply.status, reply.attempts) == ("pending", 0)
        async with transaction(sessions) as session:
            ticket = await ticket_service.ticket_detail(
                SqlSupportUnitOfWork(session, hooked), mention.ticket_id or ""
            )
        assert ticket.first_responded_at == NOW + timedelta(minutes=3)
        assert [c.body for c in ticket.comments] == ["Replied on twitter: Sorry! DM us"]

    async def test_a_platform_without_a_webhook_is_refused(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        mention, _ = await ingest(sessions, settings, text="Broken. Awful.")

        with pytest.raises(InvalidRequest, match="webhook"):
            async with transaction(sessions) as session:
                await service.reply_to_mention(
                    SqlSupportUnitOfWork(session, settings),
                    settings,
                    mention.id,
                    ReplyCreate(text="Sorry", author="pr"),
                )

    async def _claimed_reply(self, sessions: SessionFactory, settings: Settings) -> str:
        mention, _ = await ingest(sessions, settings, text="Love it")
        async with transaction(sessions) as session:
            reply = await service.reply_to_mention(
                SqlSupportUnitOfWork(session, settings),
                settings,
                mention.id,
                ReplyCreate(text="Thanks!", author="pr"),
                now=NOW,
            )
        async with transaction(sessions) as session:
            uow = SqlSupportUnitOfWork(session, settings)
            claimed = await service.due_replies(uow, settings, now=NOW)
        assert [r.id for r, _ in claimed] == [reply.id]
        return reply.id

    async def test_a_claimed_reply_is_not_handed_out_twice(
        self, sessions: SessionFactory, hooked: Settings
    ) -> None:
        await self._claimed_reply(sessions, hooked)

        async with transaction(sessions) as session:
            uow = SqlSupportUnitOfWork(session, hooked)
            assert await service.due_replies(uow, hooked, now=NOW + timedelta(seconds=1)) == []

    async def test_a_2xx_marks_the_reply_sent_and_the_mention_replied(
        self, sessions: SessionFactory, hooked: Settings
    ) -> None:
        reply_id = await self._claimed_reply(sessions, hooked)

        async with transaction(sessions) as session:
            reply = await service.record_delivery(
                SqlSupportUnitOfWork(session, hooked),
                hooked,
                reply_id,
                status_code=204,
                error=None,
                duration_ms=3.2,
                now=NOW,
            )
            assert reply is not None
            mention = await SqlMentionStore(session).get_mention(reply.mention_id)

        assert (reply.status, reply.sent_at, reply.attempts) == ("sent", NOW, 1)
        assert mention is not None and mention.status == "replied"

    async def test_a_server_error_is_retried_with_backoff_until_the_last_attempt(
        self, sessions: SessionFactory, hooked: Settings
    ) -> None:
        reply_id = await self._claimed_reply(sessions, hooked)
        now = NOW
        outcomes = []
        for attempt in range(1, 4):
            async with transaction(sessions) as session:
                reply = await service.record_delivery(
                    SqlSupportUnitOfWork(session, hooked),
                    hooked,
                    reply_id,
                    status_code=503,
                    error="busy",
                    duration_ms=1,
                    now=now,
                )
                assert reply is not None
                outcomes.append((reply.status, reply.next_attempt_at))
            if attempt < 3:
                now = reply.next_attempt_at or now
                async with transaction(sessions) as session:
                    uow = SqlSupportUnitOfWork(session, hooked)
                    assert len(await service.due_replies(uow, hooked, now=now)) == 1

        assert outcomes == [
            ("pending", NOW + timedelta(seconds=2)),
            ("pending", NOW + timedelta(seconds=6)),
            ("failed", None),
        ]
        async with transaction(sessions) as session:
            detail = await service.mention_detail(
                SqlSupportUnitOfWork(session, hooked),
                (await SqlMentionStore(session).get_reply(reply_id)).mention_id,  # type: ignore[union-attr]
            )
        assert [a.attempt for a in detail.replies[0].delivery] == [1, 2, 3]

    async def test_a_refused_signature_is_not_retried(
        self, sessions: SessionFactory, hooked: Settings
    ) -> None:
        reply_id = await self._claimed_reply(sessions, hooked)

        async with transaction(sessions) as session:
            reply = await service.record_delivery(
                SqlSupportUnitOfWork(session, hooked),
                hooked,
                reply_id,
                status_code=401,
                error="bad signature",
                duration_ms=1,
            )

        assert reply is not None and reply.status == "failed"
