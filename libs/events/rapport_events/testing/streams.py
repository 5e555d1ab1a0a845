"""A realistic customer event stream of any length, for replay tests and benchmarks."""

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rapport_events.base import Event
from rapport_events.codec import Envelope, KafkaMessage, encode
from rapport_events.types import (
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerRegistered,
    CustomerUpdated,
    InteractionTracked,
    LineItem,
    OrderCompleted,
)

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# Shares of the behaviour that follows a registration: mostly page views, as on a shop.
KINDS = ("interaction", "cart", "order", "update", "consent")
WEIGHTS = (55, 15, 12, 8, 10)


def customer_stream(events: int, customers: int, seed: int = 7) -> Iterator[Event]:
    """`events` events about `customers` customers, each registered before its behaviour."""
    rng = random.Random(seed)
    ids = [f"cust-{seed}-{n:06d}" for n in range(customers)]
    registered: list[str] = []
    consent_versions: dict[str, int] = {}
    clock = START
    for n in range(events):
        clock += timedelta(seconds=rng.randint(1, 30))
        if len(registered) < len(ids) and (not registered or n % max(1, events // customers) == 0):
            customer_id = ids[len(registered)]
            registered.append(customer_id)
            yield _registered(customer_id, clock, rng)
            continue
        customer_id = rng.choice(registered)
        kind = rng.choices(KINDS, WEIGHTS)[0]
        if kind == "consent":
            version = consent_versions[customer_id] = consent_versions.get(customer_id, 0) + 1
            yield _consent(customer_id, clock, version, rng)
        else:
            yield _BEHAVIOUR[kind](customer_id, clock, rng)


def as_messages(events: Iterable[Event]) -> list[KafkaMessage]:
    """Each event as a Kafka message, as profile publishes it."""
    return [encode(Envelope(data=event, source="/services/profile")) for event in events]


def _registered(customer_id: str, at: datetime, rng: random.Random) -> Event:
    return CustomerRegistered(
        customer_id=customer_id,
        occurred_at=at,
        email=f"{customer_id}@example.com",
        first_name="Test",
        last_name=customer_id[-4:],
        country=rng.choice(["FR", "DE", "GB", "ES"]),
        acquisition_channel=rng.choice(["paid_search", "social", "referral"]),
    )


def _consent(customer_id: str, at: datetime, version: int, rng: random.Random) -> Event:
    kind = ConsentGranted if rng.random() < 0.7 else ConsentRevoked
    return kind(
        customer_id=customer_id,
        occurred_at=at,
        purpose="marketing",
        channel=rng.choice(["email", "sms"]),
        source="web_form",
        version=version,
    )


def _item(rng: random.Random) -> LineItem:
    return LineItem(
        product_id=f"sku-{rng.randint(1, 40)}",
        category=rng.choice(["kitchen", "garden", "books"]),
        price=Decimal(rng.randint(5, 200)),
        quantity=rng.randint(1, 3),
    )


def _interaction(customer_id: str, at: datetime, rng: random.Random) -> Event:
    return InteractionTracked(
        customer_id=customer_id,
        occurred_at=at,
        kind="page",
        name=rng.choice(["Home", "Product", "Category", "Search"]),
        url=f"https://shop.example.com/p/{rng.randint(1, 500)}",
    )


def _cart(customer_id: str, at: datetime, rng: random.Random) -> Event:
    items = tuple(_item(rng) for _ in range(rng.randint(0, 3)))
    return CartUpdated(
        customer_id=customer_id,
        occurred_at=at,
        cart_id=f"cart-{customer_id}",
        action="product_added" if items else "cart_viewed",
        items=items,
        value=sum((item.price * item.quantity for item in items), Decimal(0)),
        currency="EUR",
    )


def _order(customer_id: str, at: datetime, rng: random.Random) -> Event:
    items = tuple(_item(rng) for _ in range(rng.randint(1, 3)))
    return OrderCompleted(
        customer_id=customer_id,
        occurred_at=at,
        order_id=f"ord-{customer_id}-{rng.randint(0, 10**9)}",
        items=items,
        revenue=sum((item.price * item.quantity for item in items), Decimal(0)),
        currency="EUR",
    )


def _update(customer_id: str, at: datetime, rng: random.Random) -> Event:
    return CustomerUpdated(
        customer_id=customer_id,
        occurred_at=at,
        changes={"country": rng.choice(["FR", "DE", "GB", "ES"])},
    )


_BEHAVIOUR = {"interaction": _interaction, "cart": _cart, "order": _order, "update": _update}
