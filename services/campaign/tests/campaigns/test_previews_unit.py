"""A campaign's message previewed for one customer against in-memory stores: the variant
asked for (the first by default), rendered with what campaign knows of the customer (their
fields, a recommendation, their last order) and nothing signed, sent or stored; refused for
a customer campaign does not know (or erased) and for an unknown variant or a template
that fails on the customer's data."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from rapport_campaign.audience.models import (
    Activity,
    ActivityItem,
    Alias,
    AudienceMember,
    ErasedCustomer,
)
from rapport_campaign.campaigns import previews, service
from rapport_campaign.campaigns.models import Campaign, CampaignCreate
from rapport_campaign.errors import InvalidRequest, NotFound
from rapport_campaign.messaging.models import Message
from rapport_campaign.testing import FakeCampaignUnitOfWork

VARIANTS = [
    {"name": "A", "subject": "Hello {{ customer.first_name }}", "body": "a"},
    {
        "name": "B",
        "subject": "{{ customer.first_name }} in {{ customer.city }}",
        "body": "Code {{ offer_code }}: {{ cta_url }} {{ unsubscribe_url }}",
        "html": "<p>{{ customer }}</p>",
    },
]


async def a_campaign(uow: FakeCampaignUnitOfWork, **fields: Any) -> Campaign:
    values: dict[str, Any] = {
        "name": "Spring sale",
        "channel": "email",
        "variants": VARIANTS,
        "audience": {"customer_ids": ["ann"]},
        "link": "https://shop.example/spring",
        "offer": {"prefix": "SPRING"},
    }
    values.update(fields)
    return await service.create_campaign(uow, CampaignCreate.model_validate(values))


def a_member(uow: FakeCampaignUnitOfWork, customer_id: str = "ann") -> AudienceMember:
    member = AudienceMember(
        customer_id=customer_id,
        email=f"{customer_id}@example.com",
        first_name=customer_id.title(),
        last_name="Tester",
        city="Lyon",
        registered_at=datetime(2026, 1, 5, tzinfo=UTC),
    )
    uow.rows.add(member)
    return member


def an_order(uow: FakeCampaignUnitOfWork, customer_id: str, order_id: str, product: str) -> None:
    order = Activity(
        event_id=f"evt-{order_id}",
        customer_id=customer_id,
        event_type="order.completed",
        ref=order_id,
        value=Decimal("42.5"),
        currency="EUR",
        occurred_at=datetime.now(UTC),
    )
    uow.rows.add(order)
    assert order.id is not None
    uow.rows.add(
        ActivityItem(
            activity_id=order.id, customer_id=customer_id, product_id=product, name=product
        )
    )


class TestPreview:
    async def test_the_variant_renders_for_the_customer_with_nothing_signed_or_stored(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_member(uow)
        campaign = await a_campaign(uow)
        flushes = uow.flushes

        preview = await previews.preview_message(uow, campaign.id, "ann", "B")

        assert (preview.campaign_id, preview.customer_id) == (campaign.id, "ann")
        assert (preview.variant, preview.channel, preview.subject) == ("B", "email", "Ann in Lyon")
        assert preview.text == "Code SPRING-PREVIEW: https://shop.example/spring [unsubscribe link]"
        assert preview.html == "<p>Ann Tester</p>"
        assert uow.rows.all(Message) == []
        assert uow.outbox.events == []
        assert uow.flushes == flushes

    async def test_the_first_variant_unless_one_is_named(self, uow: FakeCampaignUnitOfWork) -> None:
        a_member(uow)
        campaign = await a_campaign(uow)

        preview = await previews.preview_message(uow, campaign.id, "ann")

        assert (preview.variant, preview.subject, preview.text) == ("A", "Hello Ann", "a")

    async def test_a_recommendation_and_the_last_order_are_filled_in(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_member(uow)
        an_order(uow, "bob", "o-bob", "scarf")
        an_order(uow, "ann", "o-ann", "boots")
        body = "{{ recommendation.name }} after {{ order.order_id }} ({{ order.total }})"
        campaign = await a_campaign(
            uow, variants=[{"name": "A", "subject": "Hi", "body": body}], offer=None
        )

        preview = await previews.preview_message(uow, campaign.id, "ann")

        assert preview.text == "scarf after o-ann (42.50)"

    async def test_a_merged_id_previews_for_the_customer_it_was_merged_into(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_member(uow, "ann")
        uow.rows.add(Alias(merged_id="old-ann", customer_id="ann"))
        campaign = await a_campaign(uow)

        preview = await previews.preview_message(uow, campaign.id, "old-ann")

        assert (preview.customer_id, preview.subject) == ("ann", "Hello Ann")

    @pytest.mark.parametrize("customer_id", ["bob", "gone"])
    async def test_an_unknown_or_erased_customer_is_not_found(
        self, uow: FakeCampaignUnitOfWork, customer_id: str
    ) -> None:
        a_member(uow, "gone")
        uow.rows.add(ErasedCustomer(customer_id="gone"))
        campaign = await a_campaign(uow)

        with pytest.raises(NotFound, match=f"no audience member {customer_id}"):
            await previews.preview_message(uow, campaign.id, customer_id)

    async def test_an_unknown_variant_or_campaign_is_not_found(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_member(uow)
        campaign = await a_campaign(uow)

        with pytest.raises(NotFound, match="no variant Z"):
            await previews.preview_message(uow, campaign.id, "ann", "Z")
        with pytest.raises(NotFound):
            await previews.preview_message(uow, "cmp-nope", "ann")

    async def test_a_template_failing_on_the_customers_data_is_refused(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        # Stored as it was before templates were checked on save.
        a_member(uow)
        stored = Campaign(
            name="Old",
            channel="email",
            variants=[{"name": "A", "subject": "Hi", "body": "{{ 1 // 0 }}"}],
        )
        uow.rows.add(stored)

        with pytest.raises(InvalidRequest, match="template error in variant A.body"):
            await previews.preview_message(uow, stored.id, "ann")
