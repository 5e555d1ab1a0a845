"""The mentions use cases against in-memory stores: a mention linked to the customer who
claimed its handle (through merges, and not once erased), the ticket a complaint or a
question opens, listing, replies queued and answering the ticket, and what each delivery
attempt records and publishes."""

from datetime import UTC, date, datetime, timedelta

import pytest

from rapport_events.types import SocialMentionReceived, SocialReplySent, TicketOpened
from rapport_support.customers.models import ErasedCustomer, SupportHandle, SupportMergedCustomer
from rapport_support.errors import InvalidRequest, NotFound
from rapport_support.mentions import service
from rapport_support.mentions.models import (
    MentionCreate,
    MentionUpdate,
    ReplyCreate,
    SupportMention,
    SupportMentionReply,
    SupportReplyAttempt,
)
from rapport_support.mentions.store import MentionFilter
from rapport_support.products.models import SupportProduct
from rapport_support.settings import Settings, SocialWebhook
from rapport_support.testing import FakeSupportUnitOfWork
from rapport_support.tickets.models import SupportTicket, SupportTicketComment

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)
COMPLAINT = "My Barista X2 broke after two days. Terrible!"


@pytest.fixture
def hooked(settings: Settings) -> Settings:
    hook = SocialWebhook(url="http://127.0.0.1:9/replies", secret="s" * 32)  # type: ignore[arg-type]
    return settings.model_copy(
        update={"social_webhooks": {"twitter": hook}, "webhook_max_attempts": 3}
    )


def claimed(uow: FakeSupportUnitOfWork, customer_id: str = "cust-1", handle: str = "ada_l") -> None:
    uow.rows.add(
        SupportHandle(
            platform="twitter", handle_key=handle, handle=f"@{handle}", customer_id=customer_id
        )
    )


async def ingest(
    uow: FakeSupportUnitOfWork, settings: Settings, text: str, **fields: str
) -> tuple[SupportMention, bool]:
    values = {"platform": "twitter", "handle": "@ADA_L", "text": text} | fields
    return await service.ingest_mention(uow, settings, MentionCreate(**values), now=NOW)  # type: ignore[arg-type]


def ticket_of(uow: FakeSupportUnitOfWork, mention: SupportMention) -> SupportTicket:
    ticket = uow.rows.get(SupportTicket, mention.ticket_id)
    assert ticket is not None
    return ticket


class TestLinkingAMention:
    async def test_a_claimed_handle_links_the_mention_to_its_customer(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        claimed(uow)

        mention, created = await ingest(uow, settings, "Love my new ZenBook, great screen")

        assert created
        assert (mention.customer_id, mention.subject_id, mention.handle_key) == (
            "cust-1",
            "cust-1",
            "ada_l",
        )
        [received] = uow.outbox.published(SocialMentionReceived)
        assert (received.customer_id, received.linked, received.mention_id) == (
            "cust-1",
            True,
            mention.id,
        )

    async def test_a_merged_claimant_is_followed_to_the_survivor(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        claimed(uow, "dup-1")
        uow.rows.add(SupportMergedCustomer(merged_id="dup-1", customer_id="cust-1"))

        mention, _ = await ingest(uow, settings, "Love it")

        assert mention.customer_id == "cust-1"

    async def test_an_erased_claimant_leaves_the_mention_under_the_handle(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        claimed(uow)
        uow.rows.add(ErasedCustomer(customer_id="cust-1", erased_at=NOW))

        mention, _ = await ingest(uow, settings, "Love it")

        assert (mention.customer_id, mention.subject_id) == (None, "social:twitter:ada_l")
        assert uow.outbox.published(SocialMentionReceived)[0].linked is False

    async def test_a_long_handle_gets_a_hashed_subject(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        mention, _ = await ingest(uow, settings, "Love it", handle="@" + "a" * 100)

        assert mention.subject_id.startswith("social:") and len(mention.subject_id) == 47

    async def test_the_same_post_twice_is_stored_once(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        first, _ = await ingest(uow, settings, COMPLAINT, external_id="77")

        again, created = await ingest(uow, settings, COMPLAINT, external_id="77")

        assert not created and again is first
        assert len(uow.rows.all(SupportMention)) == len(uow.rows.all(SupportTicket)) == 1
        assert uow.outbox.types().count(SocialMentionReceived.TYPE) == 1


class TestTheTicketOfAMention:
    async def test_a_complaint_opens_a_high_priority_social_ticket_of_the_customer(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        claimed(uow)

        mention, _ = await ingest(uow, settings, COMPLAINT, url="https://twitter.com/ada_l/1")

        ticket = ticket_of(uow, mention)
        assert mention.status == "ticketed"
        assert (ticket.customer_id, ticket.channel, ticket.category) == (
            "cust-1",
            "social",
            "complaint",
        )
        assert ticket.priority == "high"
        assert ticket.subject.startswith("Twitter complaint from @ADA_L: My Barista X2")
        assert ticket.description == f"{COMPLAINT}\n\nhttps://twitter.com/ada_l/1"
        assert uow.outbox.types() == [SocialMentionReceived.TYPE, TicketOpened.TYPE]
        assert uow.outbox.published(TicketOpened)[0].ticket_id == ticket.id

    async def test_a_product_the_customer_owns_and_names_is_the_tickets_model(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        claimed(uow)
        uow.rows.add(
            SupportProduct(
                customer_id="cust-1",
                order_id="o-1",
                line_no=1,
                product_id="p-1",
                product_model="Barista X2",
                product_model_key="barista x2",
                purchased_at=NOW - timedelta(days=30),
                warranty_ends_on=date(2030, 1, 1),
            )
        )

        mention, _ = await ingest(uow, settings, COMPLAINT)

        assert ticket_of(uow, mention).product_model == "Barista X2"

    async def test_a_question_from_an_unknown_handle_is_filed_under_the_handle(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        mention, _ = await ingest(uow, settings, "How do I descale the Barista X2?")

        ticket = ticket_of(uow, mention)
        assert mention.kind == "question"
        assert (ticket.customer_id, ticket.priority, ticket.product_model) == (
            "social:twitter:ada_l",
            "normal",
            None,
        )

    async def test_praise_opens_no_ticket(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        mention, _ = await ingest(uow, settings, "Love my new ZenBook, great screen")

        assert (mention.sentiment, mention.kind, mention.ticket_id) == ("positive", "praise", None)
        assert mention.status == "new"
        assert uow.rows.all(SupportTicket) == []
        assert uow.outbox.types() == [SocialMentionReceived.TYPE]


class TestListingMentions:
    async def test_newest_first_a_page_at_a_time_filtered(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        claimed(uow)
        mentions = []
        for minutes in range(3):
            mention, _ = await ingest(uow, settings, COMPLAINT, handle="@ada_l")
            mention.received_at = NOW + timedelta(minutes=minutes)
            mentions.append(mention)
        stranger, _ = await ingest(uow, settings, "Love it", handle="@stranger")

        first = await service.list_mentions(uow, MentionFilter(linked=True), 2, None)
        rest = await service.list_mentions(uow, MentionFilter(linked=True), 2, first.next_cursor)
        unlinked = await service.list_mentions(uow, MentionFilter(linked=False), 10, None)
        praise = await service.list_mentions(uow, MentionFilter(kind="praise"), 10, None)

        assert [m.id for m in first.items] == [mentions[2].id, mentions[1].id]
        assert [m.id for m in rest.items] == [mentions[0].id] and rest.next_cursor is None
        assert [m.id for m in unlinked.items] == [m.id for m in praise.items] == [stranger.id]

    async def test_an_unknown_mention_is_not_found(self, uow: FakeSupportUnitOfWork) -> None:
        with pytest.raises(NotFound):
            await service.mention_detail(uow, "nope")
        with pytest.raises(NotFound):
            await service.update_mention(uow, "nope", MentionUpdate(status="closed"))

    async def test_staff_set_a_mentions_status(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        mention, _ = await ingest(uow, settings, "Love it")

        updated = await service.update_mention(uow, mention.id, MentionUpdate(status="closed"))

        assert updated is mention and mention.status == "closed"


class TestReplying:
    async def test_a_reply_waits_for_delivery_and_answers_the_ticket(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> None:
        mention, _ = await ingest(uow, hooked, COMPLAINT)
        published = len(uow.outbox.events)

        reply = await service.reply_to_mention(
            uow, hooked, mention.id, ReplyCreate(text="So sorry, DM us", author="pr"), now=NOW
        )

        assert (reply.status, reply.attempts, reply.next_attempt_at) == ("pending", 0, NOW)
        [comment] = uow.rows.where(SupportTicketComment, lambda c: c.ticket_id == mention.ticket_id)
        assert comment.body == "Replied on twitter: So sorry, DM us" and comment.author == "pr"
        assert SocialReplySent.TYPE not in uow.outbox.types()[published:]

    async def test_a_closed_ticket_gets_no_comment(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> None:
        mention, _ = await ingest(uow, hooked, COMPLAINT)
        ticket_of(uow, mention).status = "closed"

        await service.reply_to_mention(uow, hooked, mention.id, ReplyCreate(text="Hi", author="pr"))

        assert uow.rows.all(SupportTicketComment) == []
        assert len(uow.rows.all(SupportMentionReply)) == 1

    async def test_a_platform_without_a_webhook_is_refused(
        self, uow: FakeSupportUnitOfWork, settings: Settings
    ) -> None:
        mention, _ = await ingest(uow, settings, COMPLAINT)

        with pytest.raises(InvalidRequest, match="no reply webhook"):
            await service.reply_to_mention(
                uow, settings, mention.id, ReplyCreate(text="Hi", author="pr")
            )
        assert uow.rows.all(SupportMentionReply) == []


class TestDeliveringAReply:
    async def claimed_reply(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> tuple[SupportMention, SupportMentionReply]:
        claimed(uow)
        mention, _ = await ingest(uow, hooked, "Love it")
        await service.reply_to_mention(
            uow, hooked, mention.id, ReplyCreate(text="Thanks!", author="pr"), now=NOW
        )
        [(reply, of)] = await service.due_replies(uow, hooked, now=NOW)
        assert of is mention
        return mention, reply

    async def test_a_claimed_reply_is_not_handed_out_twice(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> None:
        _, reply = await self.claimed_reply(uow, hooked)

        assert reply.attempts == 1
        assert reply.next_attempt_at == NOW + timedelta(seconds=hooked.webhook_timeout_s * 2 + 5)
        assert await service.due_replies(uow, hooked, now=NOW + timedelta(seconds=1)) == []

    async def test_a_2xx_marks_it_sent_and_publishes_it_for_the_customers_timeline(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> None:
        mention, reply = await self.claimed_reply(uow, hooked)

        await service.record_delivery(
            uow, hooked, reply.id, status_code=204, error=None, duration_ms=3.256, now=NOW
        )

        assert (reply.status, reply.sent_at, reply.next_attempt_at) == ("sent", NOW, None)
        assert mention.status == "replied"
        [attempt] = uow.rows.all(SupportReplyAttempt)
        assert (attempt.attempt, attempt.status_code, attempt.duration_ms) == (1, 204, 3.26)
        [sent] = uow.outbox.published(SocialReplySent)
        assert (sent.customer_id, sent.mention_id, sent.reply_id, sent.text) == (
            "cust-1",
            mention.id,
            reply.id,
            "Thanks!",
        )

    async def test_a_closed_mention_stays_closed(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> None:
        mention, reply = await self.claimed_reply(uow, hooked)
        mention.status = "closed"

        await service.record_delivery(
            uow, hooked, reply.id, status_code=200, error=None, duration_ms=1, now=NOW
        )

        assert mention.status == "closed" and reply.status == "sent"

    async def test_a_server_error_is_retried_with_backoff_until_the_last_attempt(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> None:
        _, reply = await self.claimed_reply(uow, hooked)
        outcomes = []
        now = NOW
        for _ in range(3):
            await service.record_delivery(
                uow, hooked, reply.id, status_code=503, error="busy", duration_ms=1, now=now
            )
            outcomes.append((reply.status, reply.next_attempt_at))
            if reply.next_attempt_at is not None:
                now = reply.next_attempt_at
                assert len(await service.due_replies(uow, hooked, now=now)) == 1

        backoff = timedelta(seconds=hooked.webhook_backoff_s)
        assert outcomes == [
            ("pending", NOW + backoff),
            ("pending", NOW + backoff + backoff * 2),
            ("failed", None),
        ]
        assert reply.last_error == "busy"
        assert uow.outbox.published(SocialReplySent) == []

    async def test_a_refused_signature_is_not_retried(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> None:
        _, reply = await self.claimed_reply(uow, hooked)

        await service.record_delivery(
            uow, hooked, reply.id, status_code=401, error=None, duration_ms=1, now=NOW
        )

        assert (reply.status, reply.next_attempt_at, reply.last_error) == (
            "failed",
            None,
            "HTTP 401",
        )

    async def test_a_reply_erased_meanwhile_is_left_alone(
        self, uow: FakeSupportUnitOfWork, hooked: Settings
    ) -> None:
        _, reply = await self.claimed_reply(uow, hooked)
        uow.rows.delete(reply)

        assert (
            await service.record_delivery(
                uow, hooked, reply.id, status_code=204, error=None, duration_ms=1
            )
            is None
        )
        assert uow.rows.all(SupportReplyAttempt) == []
