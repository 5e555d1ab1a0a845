"""The sender's use cases against in-memory stores: due messages leased in batches, a
claim honoured once; the checks at send time (consent, erasure, frequency cap, address)
and the rendering; the outcome recorded with its events, or retried with backoff.

And the recommender: the most popular product of the last 90 days the customer has not
bought, of their favourite category when there is one; popularity counted in buyers; the
popular list cached for its time to live."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest

from rapport_campaign.audience.models import Activity, ActivityItem, AudienceMember, ConsentState
from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.messaging import service
from rapport_campaign.messaging.models import LINKS, Message
from rapport_campaign.messaging.service import Outgoing, Recommender, recommendation
from rapport_campaign.messaging.store import IN_DOUBT, IN_FLIGHT
from rapport_campaign.settings import Settings
from rapport_campaign.testing import FakeCampaignUnitOfWork
from rapport_campaign.tracking.tokens import Tokens
from rapport_events.base import utcnow
from rapport_events.types import CampaignMessageDelivered, CampaignMessageSent

_events = count(1)


def an_order(
    uow: FakeCampaignUnitOfWork,
    customer_id: str,
    *lines: tuple[str, str | None],
    days_ago: float = 1,
    quantity: int = 1,
    now: datetime | None = None,
) -> None:
    """An order of these (product, category) lines, `days_ago` days before `now` (the
    real clock's by default)."""
    order = Activity(
        event_id=f"evt-{next(_events)}",
        customer_id=customer_id,
        event_type="order.completed",
        ref=f"o-{customer_id}",
        value=Decimal("10"),
        currency="EUR",
        occurred_at=(now or utcnow()) - timedelta(days=days_ago),
    )
    uow.rows.add(order)
    assert order.id is not None
    uow.rows.extend(
        ActivityItem(
            activity_id=order.id,
            customer_id=customer_id,
            product_id=product,
            name=product.title(),
            category=category,
            price=Decimal("19.9"),
            quantity=quantity,
        )
        for product, category in lines
    )


def product_ids(products: list[dict[str, object]]) -> list[object]:
    return [product["product_id"] for product in products]


class TestRecommending:
    async def test_the_most_popular_product_not_bought_yet(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        for buyer in ("bob", "cy", "dan"):
            an_order(uow, buyer, ("boots", None))
        for buyer in ("bob", "cy"):
            an_order(uow, buyer, ("scarf", None))
        an_order(uow, "ann", ("boots", None))

        product = await Recommender().recommend(uow.audience, "ann")

        assert product == {
            "product_id": "scarf",
            "name": "Scarf",
            "category": None,
            "price": "19.90",
        }

    async def test_the_favourite_category_wins_over_popularity(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        for buyer in ("bob", "cy", "dan"):
            an_order(uow, buyer, ("boots", "shoes"))
        an_order(uow, "bob", ("novel", "books"))
        an_order(uow, "ann", ("poems", "books"), ("atlas", "books"), ("sandals", "shoes"))

        product = await Recommender().recommend(uow.audience, "ann")

        assert product is not None and product["product_id"] == "novel"

    async def test_nothing_when_the_customer_bought_everything_popular(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        an_order(uow, "bob", ("boots", None))
        an_order(uow, "ann", ("boots", None))

        assert await Recommender().recommend(uow.audience, "ann") is None

    async def test_popularity_counts_buyers_not_units_and_ties_go_by_id(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        an_order(uow, "bob", ("socks", None), quantity=50)
        an_order(uow, "bob", ("socks", None))
        an_order(uow, "cy", ("hat", None))
        an_order(uow, "dan", ("belt", None))
        an_order(uow, "dan", ("hat", None))

        popular = await uow.audience.popular_products(since=utcnow() - timedelta(days=2), limit=10)

        assert product_ids(popular) == ["hat", "belt", "socks"]
        top = await uow.audience.popular_products(since=utcnow() - timedelta(days=2), limit=2)
        assert product_ids(top) == ["hat", "belt"]

    async def test_orders_older_than_90_days_do_not_count(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        an_order(uow, "bob", ("clogs", None), days_ago=91)
        an_order(uow, "cy", ("boots", None), days_ago=89)

        product = await Recommender().recommend(uow.audience, "ann")

        assert product is not None and product["product_id"] == "boots"

    async def test_the_popular_list_is_kept_for_its_time_to_live(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        recommender = Recommender(ttl_s=300)
        an_order(uow, "bob", ("boots", None))
        assert (await recommender.recommend(uow.audience, "ann") or {})["product_id"] == "boots"
        for buyer in ("cy", "dan"):
            an_order(uow, buyer, ("scarf", None))

        cached = await recommender.recommend(uow.audience, "ann")
        recommender._loaded_at = utcnow() - timedelta(seconds=301)
        reloaded = await recommender.recommend(uow.audience, "ann")

        assert (cached or {})["product_id"] == "boots"
        assert (reloaded or {})["product_id"] == "scarf"

    async def test_what_the_customer_bought_is_read_each_time(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        recommender = Recommender()
        an_order(uow, "bob", ("boots", None), ("scarf", None))
        an_order(uow, "cy", ("boots", None))
        assert (await recommender.recommend(uow.audience, "ann") or {})["product_id"] == "boots"

        an_order(uow, "ann", ("boots", None))

        assert (await recommender.recommend(uow.audience, "ann") or {})["product_id"] == "scarf"


class TestRecommendation:
    def test_templates_see_the_product_by_name(self) -> None:
        product = {"product_id": "p-1", "name": None, "category": "shoes", "price": "9.00"}

        record = recommendation(product)

        assert record is not None
        assert (str(record), record.category, record.price) == ("p-1", "shoes", "9.00")
        assert recommendation(None) is None


# --- sending --------------------------------------------------------------------------------

NOW = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
LINK = "https://shop.example/spring"


class Clock:
    """The sender's clock (`utcnow` in `messaging.service`), moved by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    monkeypatch.setattr(service, "utcnow", clock)
    yield clock


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    return Tokens("secret", settings.public_url)


def a_campaign(uow: FakeCampaignUnitOfWork, **fields: Any) -> Campaign:
    values: dict[str, Any] = {
        "name": "Spring sale",
        "channel": "email",
        "status": "sending",
        "link": LINK,
        "variants": [{"name": "A", "subject": "Hi {{ customer.first_name }}", "body": "a"}],
    }
    values.update(fields)
    campaign = Campaign(**values)
    uow.rows.add(campaign)
    return campaign


def a_member(uow: FakeCampaignUnitOfWork, customer_id: str, **fields: Any) -> AudienceMember:
    values: dict[str, Any] = {
        "customer_id": customer_id,
        "email": f"{customer_id}@example.com",
        "first_name": customer_id.title(),
        "last_name": "Lovelace",
        "registered_at": NOW - timedelta(days=400),
    }
    values.update(fields)
    member = AudienceMember(**values)
    uow.rows.add(member)
    return member


def granted(uow: FakeCampaignUnitOfWork, customer_id: str, channel: str = "email") -> None:
    uow.rows.add(ConsentState(customer_id=customer_id, channel=channel, granted=True, version=1))


def a_customer(uow: FakeCampaignUnitOfWork, customer_id: str = "ann") -> None:
    """A member who consents to marketing e-mail: nothing stops a message to them."""
    a_member(uow, customer_id)
    granted(uow, customer_id)


def a_message(
    uow: FakeCampaignUnitOfWork,
    campaign: Campaign,
    customer_id: str | None = "ann",
    **fields: Any,
) -> Message:
    values: dict[str, Any] = {
        "campaign_id": campaign.id,
        "customer_id": customer_id,
        "channel": campaign.channel,
        "variant": "A",
        "due_at": NOW,
    }
    values.update(fields)
    message = Message(**values)
    uow.rows.add(message)
    return message


def sent_before(
    uow: FakeCampaignUnitOfWork, customer_id: str, hours_ago: float, channel: str = "email"
) -> None:
    """A message of another campaign sent to the customer `hours_ago` hours before now."""
    other = a_campaign(uow, name="Earlier", channel=channel)
    sent_at = NOW - timedelta(hours=hours_ago)
    a_message(uow, other, customer_id, status="sent", sent_at=sent_at)


async def claimed(uow: FakeCampaignUnitOfWork, settings: Settings, message: Message) -> datetime:
    """Claim the message (as the sender's first step does); returns its lease."""
    assert [m.id for m in await service.claim_due(uow, settings)] == [message.id]
    return message.due_at


async def prepared(
    uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, message: Message
) -> Outgoing | None:
    """Claim the message, then prepare it under that claim."""
    lease = await claimed(uow, settings, message)
    return await service.prepare(uow, message.id, settings, tokens, Recommender(), lease=lease)


class TestClaimingDueMessages:
    async def test_pending_messages_due_now_are_leased_to_the_sender(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, clock: Clock
    ) -> None:
        campaign = a_campaign(uow)
        due = [a_message(uow, campaign, c, due_at=NOW - timedelta(minutes=1)) for c in "ab"]
        later = a_message(uow, campaign, "c", due_at=NOW + timedelta(seconds=1))
        held = a_message(uow, campaign, "d", status="held")
        sent = a_message(uow, campaign, "e", status="sent")

        claim = await service.claim_due(uow, settings)

        assert sorted(m.id for m in claim) == sorted(m.id for m in due)
        lease = NOW + timedelta(seconds=settings.send_lease_s)
        assert [(m.status, m.due_at) for m in due] == [("sending", lease)] * 2
        assert [m.status for m in (later, held, sent)] == ["pending", "held", "sent"]
        assert uow.outbox.events == []

    async def test_a_batch_is_the_batch_size_earliest_due_first(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, clock: Clock
    ) -> None:
        campaign = a_campaign(uow)
        late, early, middle = (
            a_message(uow, campaign, c, due_at=NOW - timedelta(minutes=m))
            for c, m in (("a", 1), ("b", 3), ("c", 2))
        )
        small = settings.model_copy(update={"send_batch_size": 2})

        claim = await service.claim_due(uow, small)

        assert {m.id for m in claim} == {early.id, middle.id}
        assert late.status == "pending"
        assert [m.id for m in await service.claim_due(uow, small)] == [late.id]

    async def test_a_claimed_message_is_not_claimed_again_until_its_lease_runs_out(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, clock: Clock
    ) -> None:
        message = a_message(uow, a_campaign(uow))
        first = await claimed(uow, settings, message)

        clock.advance(settings.send_lease_s - 1)
        assert await service.claim_due(uow, settings) == []
        clock.advance(1)  # the sender died: its lease ran out
        second = await claimed(uow, settings, message)

        assert second == first + timedelta(seconds=settings.send_lease_s)
        assert message.status == "sending"

    async def test_a_message_handed_to_its_channel_by_a_sender_that_died_is_not_claimed(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, clock: Clock
    ) -> None:
        message = a_message(uow, a_campaign(uow), status="sending", reason=IN_FLIGHT)

        assert await service.claim_due(uow, settings) == []

        assert (message.status, message.reason) == ("failed", IN_DOUBT)


class TestPreparingAMessage:
    async def test_it_is_rendered_for_the_customer_and_marked_in_flight(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        campaign = a_campaign(uow)
        message = a_message(uow, campaign, offer_code="SPRING-1")

        outgoing = await prepared(uow, settings, tokens, message)

        assert outgoing is not None
        assert (outgoing.address, outgoing.channel, outgoing.variant) == (
            "ann@example.com",
            "email",
            "A",
        )
        assert outgoing.rendered.subject == "Hi Ann"
        assert outgoing.unsubscribe_url == tokens.unsubscribe_url(message.id, "ann", "email")
        assert outgoing.open_url == tokens.open_url(message.id)
        assert (message.status, message.reason) == ("sending", IN_FLIGHT)
        assert message.address == "ann@example.com"
        assert outgoing.lease == message.due_at == NOW + timedelta(seconds=settings.send_lease_s)

    async def test_templates_see_the_customer_offer_cart_order_and_a_recommendation(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        an_order(uow, "ann", ("boots", None), now=NOW)
        an_order(uow, "bob", ("scarf", None), now=NOW)
        body = (
            "{{ customer.first_name }} {{ campaign.name }} {{ offer_code }} "
            "{% for item in cart.items %}{{ item.name }}{% endfor %} {{ order.total }} "
            "{{ recommendation.name }} {{ cta_url }}"
        )
        campaign = a_campaign(uow, variants=[{"name": "A", "body": body}])
        cart = {"cart_id": "c-1", "value": "42", "currency": "EUR", "items": [{"name": "Hat"}]}
        message = a_message(uow, campaign, offer_code="SPRING-1", context={"cart": cart})

        outgoing = await prepared(uow, settings, tokens, message)

        assert outgoing is not None
        cta = tokens.click_url(message.id, LINK)
        assert outgoing.rendered.text == f"Ann Spring sale SPRING-1 Hat 10.00 Scarf {cta}"
        assert outgoing.rendered.subject is None
        assert message.context[LINKS] == [LINK]

    async def test_the_message_is_rendered_with_its_variant(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        variants = [{"name": "A", "body": "first"}, {"name": "B", "body": "second"}]
        message = a_message(uow, a_campaign(uow, variants=variants), variant="B")

        outgoing = await prepared(uow, settings, tokens, message)

        assert outgoing is not None and outgoing.rendered.text == "second"

    @pytest.mark.parametrize(
        "consent",
        [
            None,
            ConsentState(customer_id="ann", channel="email", granted=False, version=2),
            ConsentState(
                customer_id="ann", channel="email", granted=True, version=1, suppressed_at=NOW
            ),
            ConsentState(customer_id="ann", channel="sms", granted=True, version=1),
        ],
        ids=["never-asked", "revoked", "unsubscribed", "granted-on-another-channel"],
    )
    async def test_without_marketing_consent_on_its_channel_it_is_suppressed(
        self,
        uow: FakeCampaignUnitOfWork,
        settings: Settings,
        tokens: Tokens,
        clock: Clock,
        consent: ConsentState | None,
    ) -> None:
        a_member(uow, "ann")
        if consent is not None:
            uow.rows.add(consent.model_copy())
        message = a_message(uow, a_campaign(uow))

        assert await prepared(uow, settings, tokens, message) is None

        assert (message.status, message.reason) == ("suppressed", "no marketing consent on email")

    async def test_an_erased_customers_message_is_cancelled(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        # An erasure anonymises the customer's messages: one claimed before keeps going.
        message = a_message(uow, a_campaign(uow), customer_id=None)

        assert await prepared(uow, settings, tokens, message) is None

        assert (message.status, message.reason) == ("cancelled", "campaign or customer gone")

    async def test_a_message_of_a_campaign_gone_is_cancelled(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        message = a_message(uow, Campaign(name="Gone", channel="email", variants=[]))

        assert await prepared(uow, settings, tokens, message) is None

        assert (message.status, message.reason) == ("cancelled", "campaign or customer gone")

    async def test_a_message_no_longer_being_sent_is_left_as_it_is(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        message = a_message(uow, a_campaign(uow))
        await claimed(uow, settings, message)
        message.status, message.reason = "cancelled", "campaign cancelled"

        outgoing = await service.prepare(uow, message.id, settings, tokens, Recommender())

        assert outgoing is None
        assert (message.status, message.reason) == ("cancelled", "campaign cancelled")

    @pytest.mark.parametrize(
        ("channel", "member"),
        [
            ("email", None),
            ("sms", {"phone": None}),
            ("social", {"social_handles": {}}),
        ],
        ids=["not-a-member", "no-phone", "no-social-handle"],
    )
    async def test_without_an_address_on_its_channel_it_is_unreachable(
        self,
        uow: FakeCampaignUnitOfWork,
        settings: Settings,
        tokens: Tokens,
        clock: Clock,
        channel: str,
        member: dict[str, Any] | None,
    ) -> None:
        if member is not None:
            a_member(uow, "ann", **member)
        granted(uow, "ann", channel)
        message = a_message(uow, a_campaign(uow, channel=channel))

        assert await prepared(uow, settings, tokens, message) is None

        assert (message.status, message.reason) == ("unreachable", f"no {channel} address known")

    @pytest.mark.parametrize(
        ("channel", "member", "address"),
        [
            ("sms", {"phone": "+441234"}, "+441234"),
            ("push", {}, "ann"),
            ("social", {"social_handles": {"x": "ann", "bsky": "ann.b"}}, "bsky:ann.b"),
        ],
    )
    async def test_each_channel_has_its_address(
        self,
        uow: FakeCampaignUnitOfWork,
        settings: Settings,
        tokens: Tokens,
        clock: Clock,
        channel: str,
        member: dict[str, Any],
        address: str,
    ) -> None:
        a_member(uow, "ann", **member)
        granted(uow, "ann", channel)
        message = a_message(uow, a_campaign(uow, channel=channel))

        outgoing = await prepared(uow, settings, tokens, message)

        assert outgoing is not None and outgoing.address == message.address == address


class TestTheFrequencyCap:
    async def test_a_customer_sent_the_cap_in_its_window_is_capped(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        for hours_ago in (1, 12, 23.9):
            sent_before(uow, "ann", hours_ago)
        message = a_message(uow, a_campaign(uow))

        assert await prepared(uow, settings, tokens, message) is None

        assert settings.frequency_cap_messages == 3
        assert (message.status, message.reason) == ("capped", "3 email messages in 24.0h")

    async def test_only_the_customers_messages_on_the_channel_in_the_window_count(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        sent_before(uow, "ann", 1)
        sent_before(uow, "ann", 2)
        sent_before(uow, "ann", 24.1)
        sent_before(uow, "ann", 1, channel="sms")
        sent_before(uow, "bob", 1)
        message = a_message(uow, a_campaign(uow))

        assert await prepared(uow, settings, tokens, message) is not None

    async def test_the_campaigns_own_cap_wins_over_the_default(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        sent_before(uow, "ann", 47)
        campaign = a_campaign(uow, frequency_cap={"max_messages": 1, "per_hours": 48})
        message = a_message(uow, campaign)

        assert await prepared(uow, settings, tokens, message) is None

        assert (message.status, message.reason) == ("capped", "1 email messages in 48h")


class TestALeaseIsHonouredOnce:
    async def test_preparing_renews_the_lease_for_the_whole_lease_time(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        message = a_message(uow, a_campaign(uow))
        lease = await claimed(uow, settings, message)
        clock.advance(30)

        outgoing = await service.prepare(
            uow, message.id, settings, tokens, Recommender(), lease=lease
        )

        assert outgoing is not None
        assert (
            outgoing.lease == message.due_at == clock.now + timedelta(seconds=settings.send_lease_s)
        )

    async def test_a_claim_that_ran_out_is_not_prepared(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        message = a_message(uow, a_campaign(uow))
        lease = await claimed(uow, settings, message)
        clock.advance(settings.send_lease_s)

        outgoing = await service.prepare(
            uow, message.id, settings, tokens, Recommender(), lease=lease
        )

        assert outgoing is None
        assert (message.status, message.reason, message.due_at) == ("sending", None, lease)

    async def test_a_claim_another_sender_took_over_is_not_prepared(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        message = a_message(uow, a_campaign(uow))
        stalled = await claimed(uow, settings, message)
        clock.advance(settings.send_lease_s)
        taken = await claimed(uow, settings, message)

        late = await service.prepare(
            uow, message.id, settings, tokens, Recommender(), lease=stalled
        )

        assert late is None and message.due_at == taken
        assert await service.prepare(uow, message.id, settings, tokens, Recommender(), lease=taken)

    async def test_a_template_that_fails_at_send_time_fails_the_message(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        a_customer(uow)
        campaign = a_campaign(uow, variants=[{"name": "A", "body": "{{ 1 / 0 }}"}])
        message = a_message(uow, campaign)

        assert await prepared(uow, settings, tokens, message) is None

        assert message.status == "failed"
        assert message.reason == "template: A.body: ZeroDivisionError: division by zero"


async def an_outgoing(
    uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, **fields: Any
) -> tuple[Message, Outgoing]:
    a_customer(uow)
    message = a_message(uow, a_campaign(uow), **fields)
    outgoing = await prepared(uow, settings, tokens, message)
    assert outgoing is not None
    return message, outgoing


class TestRecordingASend:
    async def test_it_is_sent_and_delivered_and_both_are_published_once(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        message, outgoing = await an_outgoing(uow, settings, tokens)
        clock.advance(2)

        await service.finish_sent(uow, outgoing)
        await service.finish_sent(uow, outgoing)

        assert (message.status, message.reason, message.attempts) == ("sent", None, 1)
        assert message.sent_at == message.delivered_at == clock.now
        [sent] = uow.outbox.published(CampaignMessageSent)
        [delivered] = uow.outbox.published(CampaignMessageDelivered)
        for event in (sent, delivered):
            assert (event.customer_id, event.campaign_id, event.message_id) == (
                "ann",
                message.campaign_id,
                message.id,
            )
            assert (event.channel, event.variant) == ("email", "A")
        assert uow.outbox.types() == [CampaignMessageSent.TYPE, CampaignMessageDelivered.TYPE]

    async def test_a_message_whose_customer_was_erased_meanwhile_is_counted_unpublished(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        message, outgoing = await an_outgoing(uow, settings, tokens)
        message.customer_id = None

        await service.finish_sent(uow, outgoing)

        assert message.status == "sent"
        assert uow.outbox.events == []


class TestRecordingAFailure:
    async def test_a_transient_failure_is_retried_with_doubling_backoff(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        message, _ = await an_outgoing(uow, settings, tokens)

        await service.finish_failed(uow, message.id, "421 busy", False, settings)
        first = message.due_at
        await service.finish_failed(uow, message.id, "421 busy", False, settings)

        base = settings.send_retry_base_s
        assert first == NOW + timedelta(seconds=base)
        assert message.due_at == NOW + timedelta(seconds=2 * base)
        assert (message.status, message.reason, message.attempts) == ("pending", "421 busy", 2)
        assert uow.outbox.events == []

    async def test_the_backoff_stops_growing_at_an_hour(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        message, _ = await an_outgoing(uow, settings, tokens, attempts=20)
        patient = settings.model_copy(update={"send_max_attempts": 50})

        await service.finish_failed(uow, message.id, "421 busy", False, patient)

        assert (message.status, message.due_at) == ("pending", NOW + timedelta(hours=1))

    async def test_the_last_attempt_gives_up(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        attempts = settings.send_max_attempts - 1
        message, _ = await an_outgoing(uow, settings, tokens, attempts=attempts)

        await service.finish_failed(uow, message.id, "421 busy", False, settings)

        assert (message.status, message.reason) == ("failed", "421 busy")
        assert message.attempts == settings.send_max_attempts

    async def test_a_permanent_failure_is_not_retried(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        message, _ = await an_outgoing(uow, settings, tokens)

        await service.finish_failed(uow, message.id, "550 no such user", True, settings)

        assert (message.status, message.reason, message.attempts) == (
            "failed",
            "550 no such user",
            1,
        )
        assert await service.claim_due(uow, settings) == []

    async def test_a_failure_under_a_lease_no_longer_held_changes_nothing(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, tokens: Tokens, clock: Clock
    ) -> None:
        message, outgoing = await an_outgoing(uow, settings, tokens)
        await service.finish_sent(uow, outgoing)

        await service.finish_failed(
            uow, message.id, "timeout", False, settings, lease=outgoing.lease
        )

        assert (message.status, message.reason, message.attempts) == ("sent", None, 1)

    async def test_a_failure_under_a_lease_another_sender_took_over_changes_nothing(
        self, uow: FakeCampaignUnitOfWork, settings: Settings, clock: Clock
    ) -> None:
        message = a_message(uow, a_campaign(uow))
        stalled = await claimed(uow, settings, message)
        clock.advance(settings.send_lease_s)
        taken = await claimed(uow, settings, message)

        await service.finish_failed(uow, message.id, "timeout", False, settings, lease=stalled)

        assert (message.status, message.due_at, message.attempts) == ("sending", taken, 0)
