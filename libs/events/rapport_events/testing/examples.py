"""One realistic example of every event type, for round-trip and contract tests."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from rapport_events import value
from rapport_events.base import Event
from rapport_events.types import (
    AccountContactLinked,
    AccountCreated,
    AccountJoined,
    ActivityLogged,
    CampaignConversionAttributed,
    CampaignMessageClicked,
    CampaignMessageDelivered,
    CampaignMessageOpened,
    CampaignMessageSent,
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
    InteractionTracked,
    LineItem,
    LoyaltyPointsEarned,
    OpportunityCreated,
    OpportunityLost,
    OpportunityStageChanged,
    OpportunityWon,
    OrderCompleted,
    PartnerDataDisclosed,
    PartnerEventContributed,
    SegmentEntered,
    SegmentExited,
    SocialMentionReceived,
    SocialReplySent,
    SurveyCompleted,
    TicketOpened,
    TicketRated,
    TicketResolved,
    TicketSlaBreached,
    TicketUpdated,
)

CUSTOMER_ID = "9b2f4c1e-5a7d-4e0b-8c3f-2d6a1b9e7f40"
OCCURRED_AT = datetime(2026, 3, 14, 9, 26, 53, 589_793, tzinfo=UTC)


def value_after(*orders: OrderCompleted) -> CustomerValueChanged:
    """The customer.value.changed profile publishes once these orders (of one customer)
    are all it holds: the one method of rapport_events.value, for tests without profile."""
    count = len(orders)
    revenue = sum((o.revenue for o in orders), Decimal(0)).quantize(value.CENT)
    profit = sum((o.revenue - (o.cost or 0) for o in orders), Decimal(0)).quantize(value.CENT)
    first = min(o.occurred_at for o in orders)
    last = max(o.occurred_at for o in orders)
    lifetime = value.lifetime_value(profit, first, last)
    return CustomerValueChanged(
        customer_id=orders[0].customer_id,
        occurred_at=last,
        orders=count,
        revenue=revenue,
        average_order_value=value.average_order_value(count, revenue),
        profit=profit,
        lifetime_value=lifetime,
        tier=value.tier(count, lifetime),  # type: ignore[arg-type]
        first_order_at=first,
        last_order_at=last,
        frequency_score=value.frequency_score(count),
        monetary_score=value.monetary_score(count, revenue),
    )


def example_events(customer_id: str = CUSTOMER_ID) -> list[Event]:
    """One event of every type in EVENT_MODELS, all about `customer_id`."""
    at = {"customer_id": customer_id, "occurred_at": OCCURRED_AT}
    espresso = LineItem(
        product_id="sku-espresso-x2",
        product_model="Barista X2",
        name="Barista X2 espresso machine",
        category="kitchen",
        price=Decimal("349.00"),
        quantity=1,
        serial_number="BX2-0042-7781",
    )
    beans = LineItem(product_id="sku-beans-1kg", name="House blend 1 kg", price=Decimal("18.50"))
    message = {"campaign_id": "cmp-spring-sale", "message_id": "msg-51c0", "channel": "email"}
    return [
        CustomerRegistered(
            **at,
            email="ada.lovelace@example.com",
            phone="+44 20 7946 0958",
            first_name="Ada",
            last_name="Lovelace",
            birth_date=date(1985, 12, 10),
            gender="female",
            income_band="50-75k",
            education="master",
            country="GB",
            city="London",
            acquisition_channel="paid_search",
            social_handles={"twitter": "@ada_l"},
            external_ids={"shopify": "7781002"},
        ),
        CustomerUpdated(**at, changes={"city": "Manchester", "phone": None}),
        CustomerMerged(
            **at,
            merged_customer_id="0c8d1f3a-9e2b-4b6a-a7c5-3f1e8d2b6c11",
            reason="email",
            actor="agent:grace",
        ),
        CustomerErased(**at, requested_by="customer", reason="GDPR article 17 request"),
        ConsentGranted(
            **at,
            purpose="marketing",
            channel="email",
            source="web_form",
            text_version="2026-01",
            version=1,
        ),
        ConsentRevoked(
            **at,
            purpose="partner_sharing",
            partner_id="ptn-coffee-club",
            slices=("contact", "purchase_summary"),
            source="unsubscribe_link",
            version=2,
        ),
        InteractionTracked(
            **at,
            kind="search",
            name="Products Searched",
            anonymous_id="anon-3f9a",
            message_id="seg-msg-0001",
            properties={"results": 12, "filters": {"brand": "Barista"}},
            url="https://shop.example.com/search?q=espresso",
            referrer="https://www.google.com/",
            search_query="espresso machine",
            user_agent="Mozilla/5.0 (X11; Linux x86_64)",
            utm={"source": "google", "medium": "cpc", "campaign": "spring"},
        ),
        CartUpdated(
            **at,
            cart_id="cart-88f1",
            action="product_added",
            items=(espresso, beans),
            value=Decimal("367.50"),
            currency="EUR",
        ),
        OrderCompleted(
            **at,
            order_id="ord-2026-000123",
            items=(espresso, beans),
            revenue=Decimal("367.50"),
            currency="EUR",
            discount=Decimal("20.00"),
            shipping=Decimal("4.90"),
            tax=Decimal("61.25"),
            coupon="SPRING20",
            sales_channel="web",
            cost=Decimal("210.00"),
        ),
        value_after(
            OrderCompleted(
                **at,
                order_id="ord-2026-000123",
                items=(espresso, beans),
                revenue=Decimal("367.50"),
                cost=Decimal("210.00"),
            )
        ),
        SurveyCompleted(
            **at,
            survey_id="srv-post-purchase",
            answers={"recommend": "yes", "comment": "Fast delivery"},
            nps_score=9,
        ),
        LoyaltyPointsEarned(
            **at,
            program="beans-club",
            points=367,
            balance=1240,
            reason="purchase",
            order_id="ord-2026-000123",
        ),
        SegmentEntered(**at, segment_id="seg-high-value", segment_name="High value"),
        SegmentExited(**at, segment_id="seg-dormant", segment_name="Dormant 90 days"),
        CampaignMessageSent(**message, **at, variant="B"),
        CampaignMessageDelivered(**message, **at),
        CampaignMessageOpened(**message, **at),
        CampaignMessageClicked(
            **message, **at, url="https://shop.example.com/sale?utm_campaign=spring"
        ),
        CampaignConversionAttributed(
            **at,
            campaign_id="cmp-spring-sale",
            message_id="msg-51c0",
            order_id="ord-2026-000123",
            revenue=Decimal("367.50"),
            model="last_touch",
        ),
        TicketOpened(
            **at,
            ticket_id="tkt-4410",
            subject="Machine leaks water",
            category="hardware",
            priority="high",
            channel="phone",
            product_model="Barista X2",
        ),
        TicketUpdated(
            **at, ticket_id="tkt-4410", status="pending", changes={"assignee": "agent:linus"}
        ),
        TicketResolved(
            **at,
            ticket_id="tkt-4410",
            resolution="Replaced the water tank seal",
            category="hardware",
            product_model="Barista X2",
        ),
        TicketRated(**at, ticket_id="tkt-4410", rating=5, comment="Quick and friendly"),
        TicketSlaBreached(
            **at,
            ticket_id="tkt-4410",
            target="first_response",
            priority="high",
            due_at=OCCURRED_AT - timedelta(hours=1),
            breached_at=OCCURRED_AT,
        ),
        SocialMentionReceived(
            **at,
            mention_id="mnt-77",
            platform="twitter",
            handle="@ada_l",
            text="My new Barista X2 makes the best flat white!",
            url="https://twitter.com/ada_l/status/1",
            sentiment="positive",
            linked=True,
        ),
        SocialReplySent(
            **at,
            mention_id="mnt-77",
            reply_id="rpl-12",
            platform="twitter",
            handle="@ada_l",
            text="Glad you like it, Ada!",
            author="pr:linus",
        ),
        PartnerDataDisclosed(
            **at,
            partner_id="ptn-coffee-club",
            partner_name="Coffee Club",
            partner_ref="ref-5d1e0a",
            slices=("contact", "loyalty"),
            fields=("email", "first_name", "loyalty.balance"),
            consent_version=1,
            request_id="req-9a0b",
        ),
        PartnerEventContributed(
            **at,
            partner_id="ptn-coffee-club",
            name="Tasting Attended",
            properties={"venue": "Shoreditch", "seats": 2},
        ),
        AccountJoined(
            **at, account_id="acme-co", name="Acme Coffee", traits={"industry": "hospitality"}
        ),
        AccountCreated(
            **at,
            account_id="acc-0a1b",
            name="Acme Coffee",
            domain="acme.example",
            industry="hospitality",
            size="51-200",
            owner="rep:grace",
        ),
        AccountContactLinked(
            **at, account_id="acc-0a1b", account_name="Acme Coffee", source="group", role="buyer"
        ),
        OpportunityCreated(
            **at,
            opportunity_id="opp-31",
            account_id="acc-0a1b",
            pipeline_id="pl-default",
            amount=Decimal("12000.00"),
            owner="rep:grace",
            name="Acme: 20 espresso machines",
            stage="qualification",
            probability=Decimal("0.2"),
            expected_close_date=date(2026, 6, 30),
            source="campaign:cmp-spring-sale",
        ),
        OpportunityStageChanged(
            **at,
            opportunity_id="opp-31",
            account_id="acc-0a1b",
            pipeline_id="pl-default",
            amount=Decimal("12000.00"),
            from_stage="qualification",
            to_stage="proposal",
            probability=Decimal("0.5"),
        ),
        OpportunityWon(
            **at,
            opportunity_id="opp-31",
            account_id="acc-0a1b",
            pipeline_id="pl-default",
            amount=Decimal("12000.00"),
            order_id="sales-opp-31",
            cycle_days=41,
        ),
        OpportunityLost(
            **at,
            opportunity_id="opp-32",
            account_id="acc-0a1b",
            pipeline_id="pl-default",
            amount=Decimal("800.00"),
            reason="price",
            cycle_days=12,
        ),
        ActivityLogged(
            **at,
            activity_id="act-9",
            kind="meeting",
            subject="Demo of the Barista X2",
            account_id="acc-0a1b",
            owner="rep:grace",
            starts_at=OCCURRED_AT + timedelta(days=2),
        ),
    ]
