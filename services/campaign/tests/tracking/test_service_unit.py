"""The links in messages against in-memory stores: their signed tokens (made and read back,
refused when altered, forged, of another kind or expired), opens and clicks recorded once
with their events, a click only to a link the message was sent with, and an unsubscribe
that suppresses the channel, queues the revocation, disarms the journeys on it and has the
segments test the customer again; the queued revocations leased to the sync one batch at a
time, recorded once profile has them, retried with backoff when it did not answer; and
orders credited to the message whose offer code they redeem or, else, to a click within its
campaign's window under the model chosen."""

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from rapport_campaign.audience.models import Alias, ConsentState, ErasedCustomer
from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.journeys.models import JourneyState
from rapport_campaign.messaging.models import LINKS, Message
from rapport_campaign.settings import Settings
from rapport_campaign.testing import FakeCampaignUnitOfWork
from rapport_campaign.tracking import service
from rapport_campaign.tracking.models import Click, Conversion, Unsubscribe
from rapport_campaign.tracking.tokens import (
    SALTS,
    ClickTarget,
    ExpiredToken,
    InvalidToken,
    Tokens,
    UnsubscribeTarget,
    with_utm,
)
from rapport_events.types import (
    CampaignConversionAttributed,
    CampaignMessageClicked,
    CampaignMessageOpened,
    LineItem,
    OrderCompleted,
)

SECRET = "a-signing-secret-of-at-least-thirty-two-chars"
SPRING = "https://shop.example/spring"
VARIANTS = [{"name": "A", "subject": "Hi", "body": "a"}]


def tokens(secret: str = SECRET, max_age_days: float = 90.0) -> Tokens:
    return Tokens(secret, "https://campaign.example/", max_age_days)


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def made_days_ago(monkeypatch: pytest.MonkeyPatch, days: float, make: Any) -> str:
    """A token made `days` ago: the signer reads the clock when it signs."""
    signed_at = int((datetime.now(UTC) - timedelta(days=days)).timestamp())
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda _self: signed_at)
        return token_of(make())


class TestTokens:
    def test_each_link_reads_back_what_it_was_made_for(self) -> None:
        links = tokens()

        click_url = links.click_url("m1", SPRING)
        assert click_url.startswith("https://campaign.example/t/")
        assert links.click(token_of(click_url)) == ClickTarget("m1", SPRING)
        assert links.open(token_of(links.open_url("m1"))) == "m1"
        unsubscribe = token_of(links.unsubscribe_url("m1", "ann", "email"))
        assert links.unsubscribe(unsubscribe) == UnsubscribeTarget("m1", "ann", "email")

    def test_an_altered_token_is_invalid_not_expired(self) -> None:
        links = tokens()
        token = token_of(links.click_url("m1", SPRING))
        # The payload, not the signature's last character (whose spare bits decode alike).
        altered = ("A" if token[0] != "A" else "B") + token[1:]

        with pytest.raises(InvalidToken, match="not valid") as refused:
            links.click(altered)
        assert not isinstance(refused.value, ExpiredToken)

    def test_a_token_signed_with_another_secret_is_refused(self) -> None:
        forged = token_of(tokens("another-secret-just-as-long-as-the-first").open_url("m1"))

        with pytest.raises(InvalidToken):
            tokens().open(forged)

    def test_a_token_of_one_kind_does_not_open_another(self) -> None:
        links = tokens()
        open_token = token_of(links.open_url("m1"))

        with pytest.raises(InvalidToken):
            links.click(open_token)
        with pytest.raises(InvalidToken):
            links.unsubscribe(open_token)

    def test_a_token_older_than_links_live_is_expired(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        links = tokens(max_age_days=30)
        old = made_days_ago(monkeypatch, 31, lambda: links.click_url("m1", SPRING))
        recent = made_days_ago(monkeypatch, 29, lambda: links.click_url("m1", SPRING))

        with pytest.raises(ExpiredToken, match="expired"):
            links.click(old)
        assert links.click(recent) == ClickTarget("m1", SPRING)

    def test_a_click_token_to_anything_but_a_web_url_is_refused(self) -> None:
        links = tokens()

        with pytest.raises(InvalidToken, match="http"):
            links.click(token_of(links.click_url("m1", "javascript:alert(1)")))

    def test_a_genuine_token_of_the_wrong_shape_is_malformed(self) -> None:
        # Signed with the right secret and salt, but not [message id, url].
        signer = URLSafeTimedSerializer(SECRET, salt=SALTS["click"])

        with pytest.raises(InvalidToken, match="malformed"):
            tokens().click(signer.dumps(["m1"]))
        with pytest.raises(InvalidToken, match="malformed"):
            tokens().click(signer.dumps(["m1", 7]))

    def test_utm_parameters_are_added_and_the_authors_own_kept(self) -> None:
        url = with_utm(
            "https://shop.example/spring?utm_source=news&size=42",
            source="rapport",
            medium="email",
            campaign="spring-sale",
            content=None,
        )

        assert parse_qs(urlsplit(url).query) == {
            "utm_source": ["news"],
            "size": ["42"],
            "utm_medium": ["email"],
            "utm_campaign": ["spring-sale"],
        }


def a_message(
    uow: FakeCampaignUnitOfWork,
    *,
    customer_id: str | None = "ann",
    links: list[str] | None = None,
    campaign_name: str | None = "Spring Sale!",
) -> Message:
    campaign = Campaign(name=campaign_name or "gone", channel="email", variants=VARIANTS)
    if campaign_name is not None:
        uow.rows.add(campaign)
    message = Message(
        campaign_id=campaign.id,
        customer_id=customer_id,
        channel="email",
        variant="B",
        status="sent",
        context={LINKS: [SPRING] if links is None else links},
    )
    uow.rows.add(message)
    return message


class TestOpens:
    async def test_the_first_open_is_recorded_and_published(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        message = a_message(uow)

        await service.record_open(uow, message.id)

        assert message.opened_at is not None
        [opened] = uow.outbox.published(CampaignMessageOpened)
        assert (opened.customer_id, opened.campaign_id, opened.message_id) == (
            "ann",
            message.campaign_id,
            message.id,
        )
        assert (opened.channel, opened.variant) == ("email", "B")

    async def test_a_later_open_changes_nothing(self, uow: FakeCampaignUnitOfWork) -> None:
        message = a_message(uow)
        await service.record_open(uow, message.id)
        first = message.opened_at

        await service.record_open(uow, message.id)

        assert message.opened_at == first
        assert len(uow.outbox.events) == 1

    async def test_an_erased_customers_open_is_counted_but_not_published(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        message = a_message(uow, customer_id=None)

        await service.record_open(uow, message.id)

        assert message.opened_at is not None
        assert uow.outbox.events == []

    async def test_an_unknown_message_records_nothing(self, uow: FakeCampaignUnitOfWork) -> None:
        await service.record_open(uow, "no-such-message")

        assert uow.outbox.events == []
        assert uow.rows.all(Message) == []


class TestClicks:
    async def test_a_click_is_recorded_with_the_open_it_implies_and_redirects_with_utm(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        message = a_message(uow)

        url = await service.record_click(uow, message.id, SPRING)

        assert url is not None
        assert url.startswith(SPRING + "?")
        assert parse_qs(urlsplit(url).query) == {
            "utm_source": ["rapport"],
            "utm_medium": ["email"],
            "utm_campaign": ["spring-sale"],
            "utm_content": ["B"],
        }
        assert message.opened_at is not None and message.clicked_at is not None
        [click] = uow.rows.all(Click)
        assert (click.message_id, click.campaign_id, click.customer_id, click.url) == (
            message.id,
            message.campaign_id,
            "ann",
            SPRING,
        )
        assert uow.outbox.types() == [CampaignMessageOpened.TYPE, CampaignMessageClicked.TYPE]
        assert uow.outbox.published(CampaignMessageClicked)[0].url == SPRING

    async def test_a_link_the_message_was_not_sent_with_is_refused_with_nothing_recorded(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        message = a_message(uow)

        assert await service.record_click(uow, message.id, "https://evil.example/") is None

        assert (message.opened_at, message.clicked_at) == (None, None)
        assert uow.rows.all(Click) == []
        assert uow.outbox.events == []

    async def test_a_message_campaign_never_sent_is_refused(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        assert await service.record_click(uow, "no-such-message", SPRING) is None
        assert uow.rows.all(Click) == []

    async def test_a_second_click_is_kept_but_the_first_time_stays(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        message = a_message(uow)
        await service.record_click(uow, message.id, SPRING)
        first = message.clicked_at

        await service.record_click(uow, message.id, SPRING)

        assert message.clicked_at == first
        assert len(uow.rows.all(Click)) == 2
        assert len(uow.outbox.published(CampaignMessageOpened)) == 1
        assert len(uow.outbox.published(CampaignMessageClicked)) == 2

    async def test_without_its_campaign_the_utm_campaign_is_the_campaign_id(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        message = a_message(uow, campaign_name=None)

        url = await service.record_click(uow, message.id, SPRING)

        assert url is not None
        assert parse_qs(urlsplit(url).query)["utm_campaign"] == [message.campaign_id]


def a_journey_timer(uow: FakeCampaignUnitOfWork, channel: str, customer_id: str) -> JourneyState:
    journey = Campaign(
        kind="journey", name=f"Welcome by {channel}", channel=channel, variants=VARIANTS
    )
    uow.rows.add(journey)
    state = JourneyState(
        journey_id=journey.id, customer_id=customer_id, due_at=datetime.now(UTC) + timedelta(1)
    )
    uow.rows.add(state)
    return state


class TestUnsubscribing:
    async def test_the_channel_is_suppressed_and_the_revocation_queued_for_profile(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.rows.add(ConsentState(customer_id="ann", channel="email", granted=True))

        assert await service.unsubscribe(uow, "ann", "email", "m1") is True

        consent = uow.rows.get(ConsentState, "ann", "email")
        assert consent is not None and consent.suppressed_at is not None and not consent.granted
        [queued] = uow.rows.all(Unsubscribe)
        assert (queued.customer_id, queued.channel, queued.message_id) == ("ann", "email", "m1")
        assert queued.synced_at is None
        assert uow.membership.reevaluated == [("ann", {"consent"})]

    async def test_the_journeys_on_that_channel_are_disarmed_and_the_others_kept(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        by_email = a_journey_timer(uow, "email", "ann")
        by_sms = a_journey_timer(uow, "sms", "ann")
        bobs = a_journey_timer(uow, "email", "bob")

        await service.unsubscribe(uow, "ann", "email", None)

        assert by_email.due_at is None
        assert by_sms.due_at is not None and bobs.due_at is not None

    async def test_a_merged_id_unsubscribes_the_customer_it_was_merged_into(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.rows.add(Alias(merged_id="old-ann", customer_id="ann"))

        assert await service.unsubscribe(uow, "old-ann", "sms", None) is True

        assert uow.rows.get(ConsentState, "ann", "sms") is not None
        assert uow.rows.get(ConsentState, "old-ann", "sms") is None
        assert [u.customer_id for u in uow.rows.all(Unsubscribe)] == ["ann"]

    async def test_a_second_unsubscribe_queues_nothing_more(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        await service.unsubscribe(uow, "ann", "email", "m1")

        assert await service.unsubscribe(uow, "ann", "email", "m2") is True

        assert len(uow.rows.all(Unsubscribe)) == 1
        assert len(uow.membership.reevaluated) == 1

    @pytest.mark.parametrize(
        ("customer_id", "channel"), [("gone", "email"), ("ann", "carrier-pigeon")]
    )
    async def test_an_erased_customer_or_an_unknown_channel_changes_nothing(
        self, uow: FakeCampaignUnitOfWork, customer_id: str, channel: str
    ) -> None:
        uow.rows.add(ErasedCustomer(customer_id="gone"))

        assert await service.unsubscribe(uow, customer_id, channel, None) is False

        assert uow.rows.all(ConsentState) == []
        assert uow.rows.all(Unsubscribe) == []
        assert uow.membership.reevaluated == []


NOW = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The sync's clock, fixed."""
    monkeypatch.setattr(service, "utcnow", lambda: NOW)
    return NOW


def queued(uow: FakeCampaignUnitOfWork, customer_id: str, **fields: Any) -> Unsubscribe:
    values: dict[str, Any] = {
        "customer_id": customer_id,
        "channel": "email",
        "next_attempt_at": NOW,
    }
    row = Unsubscribe(**{**values, **fields})
    uow.rows.add(row)
    return row


class TestSyncingUnsubscribes:
    async def test_due_unsynced_unsubscribes_are_leased_one_batch_in_order(
        self, uow: FakeCampaignUnitOfWork, now: datetime
    ) -> None:
        first, second, third = (queued(uow, c) for c in ("ann", "bob", "cy"))
        queued(uow, "dan", synced_at=NOW - timedelta(hours=1))
        queued(uow, "eve", next_attempt_at=NOW + timedelta(seconds=1))

        claimed = await service.claim_unsynced_unsubscribes(uow, 60, limit=2)

        assert claimed == [first, second]
        assert [row.next_attempt_at for row in claimed] == [NOW + timedelta(seconds=60)] * 2
        assert await service.claim_unsynced_unsubscribes(uow, 60, limit=2) == [third]
        assert await service.claim_unsynced_unsubscribes(uow, 60, limit=2) == []

    async def test_one_profile_recorded_is_synced_and_not_claimed_again(
        self, uow: FakeCampaignUnitOfWork, now: datetime
    ) -> None:
        row = queued(uow, "ann", next_attempt_at=NOW - timedelta(minutes=5))
        assert row.id is not None

        await service.unsubscribe_synced(uow, row.id, None)

        assert (row.synced_at, row.attempts, row.last_error) == (NOW, 1, None)
        assert await service.claim_unsynced_unsubscribes(uow, 60) == []

    async def test_one_profile_refused_for_good_is_synced_with_its_error(
        self, uow: FakeCampaignUnitOfWork, now: datetime
    ) -> None:
        row = queued(uow, "ann")
        assert row.id is not None

        await service.unsubscribe_synced(uow, row.id, "profile answered 404")

        assert (row.synced_at, row.last_error) == (NOW, "profile answered 404")

    @pytest.mark.parametrize(("attempts", "wait_s"), [(0, 2), (1, 4), (3, 16), (20, 3600)])
    async def test_one_profile_did_not_answer_is_retried_backing_off_up_to_an_hour(
        self, uow: FakeCampaignUnitOfWork, now: datetime, attempts: int, wait_s: int
    ) -> None:
        row = queued(uow, "ann", attempts=attempts)
        assert row.id is not None

        await service.unsubscribe_failed(uow, row.id, "profile unreachable")

        assert (row.synced_at, row.attempts, row.last_error) == (
            None,
            attempts + 1,
            "profile unreachable",
        )
        assert row.next_attempt_at == NOW + timedelta(seconds=wait_s)


ORDERED_AT = datetime(2026, 5, 1, 12, tzinfo=UTC)


def an_order(order_id: str = "o-1", coupon: str | None = None) -> OrderCompleted:
    return OrderCompleted(
        customer_id="ann",
        order_id=order_id,
        revenue="80.00",
        currency="EUR",
        coupon=coupon,
        items=[LineItem(product_id="sku-1", price="80.00")],
        occurred_at=ORDERED_AT,
    )


def clicked(uow: FakeCampaignUnitOfWork, message: Message, hours_before: float) -> None:
    uow.rows.add(
        Click(
            message_id=message.id,
            campaign_id=message.campaign_id,
            customer_id=message.customer_id,
            url=SPRING,
            clicked_at=ORDERED_AT - timedelta(hours=hours_before),
        )
    )


class TestAttribution:
    async def test_the_offer_code_redeemed_credits_its_message_and_publishes_once(
        self, uow: FakeCampaignUnitOfWork, settings: Settings
    ) -> None:
        coded = a_message(uow)
        coded.offer_code = "SPRING-7Q"
        clicked(uow, a_message(uow, campaign_name="Other"), hours_before=1)

        conversion = await service.attribute_order(
            uow, "ann", an_order(coupon="spring-7q"), settings
        )
        again = await service.attribute_order(uow, "ann", an_order(coupon="spring-7q"), settings)

        assert conversion is not None and again is None
        assert (conversion.message_id, conversion.touch) == (coded.id, "offer_code")
        assert (conversion.order_key, conversion.revenue) == ("ann:o-1", 80)
        assert (coded.redeemed_at, coded.redeemed_order_id) == (ORDERED_AT, "o-1")
        [attributed] = uow.outbox.published(CampaignConversionAttributed)
        assert (attributed.message_id, attributed.model) == (coded.id, "last_touch")
        assert uow.rows.all(Conversion) == [conversion]

    async def test_someone_elses_code_is_marked_redeemed_but_credits_a_click_instead(
        self, uow: FakeCampaignUnitOfWork, settings: Settings
    ) -> None:
        theirs = a_message(uow, customer_id="bob")
        theirs.offer_code = "BOBS"
        mine = a_message(uow)
        clicked(uow, mine, hours_before=2)

        conversion = await service.attribute_order(uow, "ann", an_order(coupon="bobs"), settings)

        assert conversion is not None
        assert (conversion.message_id, conversion.touch) == (mine.id, "click")
        assert theirs.redeemed_order_id == "o-1"

    async def test_the_model_picks_the_last_or_the_first_click_in_the_window(
        self, uow: FakeCampaignUnitOfWork, settings: Settings
    ) -> None:
        first, last = a_message(uow, campaign_name="First"), a_message(uow, campaign_name="Last")
        clicked(uow, first, hours_before=30)
        clicked(uow, last, hours_before=3)
        first_touch = settings.model_copy(update={"attribution_model": "first_touch"})

        by_last = await service.attribute_order(uow, "ann", an_order("o-1"), settings)
        by_first = await service.attribute_order(uow, "ann", an_order("o-2"), first_touch)

        assert by_last is not None and by_last.message_id == last.id
        assert by_first is not None and by_first.message_id == first.id
        assert (by_first.model, by_first.variant) == ("first_touch", "B")

    async def test_a_click_outside_its_campaigns_window_earns_nothing(
        self, uow: FakeCampaignUnitOfWork, settings: Settings
    ) -> None:
        message = a_message(uow)
        campaign = uow.rows.get(Campaign, message.campaign_id)
        assert campaign is not None
        campaign.attribution_window_hours = 24
        clicked(uow, message, hours_before=25)

        assert await service.attribute_order(uow, "ann", an_order(), settings) is None
        assert uow.outbox.published(CampaignConversionAttributed) == []

    async def test_a_campaigns_own_window_can_be_longer_than_the_default(
        self, uow: FakeCampaignUnitOfWork, settings: Settings
    ) -> None:
        message = a_message(uow)
        campaign = uow.rows.get(Campaign, message.campaign_id)
        assert campaign is not None
        campaign.attribution_window_hours = 24 * 30
        clicked(uow, message, hours_before=settings.attribution_window_hours + 24)

        conversion = await service.attribute_order(uow, "ann", an_order(), settings)

        assert conversion is not None and conversion.message_id == message.id

    async def test_a_click_after_the_order_earns_nothing(
        self, uow: FakeCampaignUnitOfWork, settings: Settings
    ) -> None:
        clicked(uow, a_message(uow), hours_before=-1)

        assert await service.attribute_order(uow, "ann", an_order(), settings) is None
