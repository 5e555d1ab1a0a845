"""The recommender against in-memory stores: the most popular product of the last 90 days
the customer has not bought, of their favourite category when there is one; popularity
counted in buyers; the popular list cached for its time to live."""

from datetime import timedelta
from decimal import Decimal
from itertools import count

from rapport_campaign.audience.models import Activity, ActivityItem
from rapport_campaign.messaging.service import Recommender, recommendation
from rapport_campaign.testing import FakeCampaignUnitOfWork
from rapport_events.base import utcnow

_events = count(1)


def an_order(
    uow: FakeCampaignUnitOfWork,
    customer_id: str,
    *lines: tuple[str, str | None],
    days_ago: float = 1,
    quantity: int = 1,
) -> None:
    """An order of these (product, category) lines, `days_ago` days ago."""
    order = Activity(
        event_id=f"evt-{next(_events)}",
        customer_id=customer_id,
        event_type="order.completed",
        ref=f"o-{customer_id}",
        value=Decimal("10"),
        currency="EUR",
        occurred_at=utcnow() - timedelta(days=days_ago),
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
