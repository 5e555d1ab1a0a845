"""Every query of the audience: customers, their activity and product lines, consents,
aliases and tombstones; what templates recommend from orders; acquisition channels.

`AudienceStore` is what the use cases behind the routes, the broadcasts and journeys, and a
merge, an erasure and the export (`rapport_campaign.lifecycle`) ask of it;
`SqlAudienceStore` answers on the transaction's session, and `rapport_campaign.testing` has
the in-memory fake. The module's functions are the projection's, which reads and writes a
run of events in bulk.

Longer than the other modules: the bulk queries, the Protocol and its SQL answers of one
domain stay together, so that each query sits beside what asks it."""

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import case, delete, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.audience.models import (
    Activity,
    ActivityItem,
    Alias,
    AudienceMember,
    ConsentState,
    ErasedCustomer,
)
from rapport_campaign.messaging import template_data
from rapport_campaign.shared import (
    all_rows,
    as_time,
    chunks,
    delete_rows,
    rows_of,
    rows_per_statement,
    update_rows,
)
from rapport_events import customer_ids as customer_ids_kit
from rapport_events.unit_of_work import SqlStore

AUDIENCE = AudienceMember.__table__  # type: ignore[attr-defined]
ACTIVITY = Activity.__table__  # type: ignore[attr-defined]
ITEMS = ActivityItem.__table__  # type: ignore[attr-defined]
CONSENTS = ConsentState.__table__  # type: ignore[attr-defined]


def add_member(session: AsyncSession, member: AudienceMember) -> None:
    session.add(member)


async def activity_recorded(session: AsyncSession, event_id: str) -> bool:
    found = await session.exec(select(Activity.id).where(Activity.event_id == event_id))
    return found.first() is not None


async def add_activity(
    session: AsyncSession, activity: Activity, items: Sequence[ActivityItem]
) -> None:
    session.add(activity)
    await session.flush()
    assert activity.id is not None
    for item in items:
        item.activity_id = activity.id
        session.add(item)


async def loyalty_history(session: AsyncSession, customer_id: str) -> list[tuple[Decimal, Any]]:
    """(points, balance) of each loyalty event, oldest first."""
    result = await all_rows(
        session,
        sa_select(col(Activity.value), col(Activity.balance))
        .where(
            col(Activity.customer_id) == customer_id,
            col(Activity.event_type) == "loyalty.points.earned",
        )
        .order_by(col(Activity.occurred_at), col(Activity.id)),
    )
    return [(Decimal(str(value or 0)), balance) for value, balance in result]


async def last_nps(session: AsyncSession, customer_id: str) -> int | None:
    result = await session.exec(
        select(col(Activity.value))
        .where(
            Activity.customer_id == customer_id,
            Activity.event_type == "survey.completed",
            col(Activity.value).is_not(None),
        )
        .order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc())
        .limit(1)
    )
    value = result.first()
    return int(value) if value is not None else None


async def last_activity_at(session: AsyncSession, customer_id: str) -> datetime | None:
    result = await session.exec(
        select(func.max(Activity.occurred_at)).where(
            Activity.customer_id == customer_id,
            col(Activity.event_type).in_(
                ("order.completed", "cart.updated", "interaction.tracked", "survey.completed")
            ),
        )
    )
    return as_time(result.one())


async def erased_among(session: AsyncSession, customer_ids: Iterable[str]) -> set[str]:
    """Which of these ids were erased."""
    ids, found = sorted(set(customer_ids)), set[str]()
    for chunk in chunks(ids):
        result = await session.exec(
            select(ErasedCustomer.customer_id).where(col(ErasedCustomer.customer_id).in_(chunk))
        )
        found.update(result.all())
    return found


async def aliases(session: AsyncSession, merged_ids: Iterable[str]) -> dict[str, str]:
    """The survivor of each of these ids that was merged into another."""
    ids, found = sorted(set(merged_ids)), {}
    for chunk in chunks(ids):
        result = await session.exec(
            select(Alias.merged_id, Alias.customer_id).where(col(Alias.merged_id).in_(chunk))
        )
        found.update(dict(result.all()))
    return found


async def delete_aliases(session: AsyncSession, merged_ids: Sequence[str]) -> None:
    for chunk in chunks(merged_ids):
        await session.exec(delete(Alias).where(col(Alias.merged_id).in_(chunk)))


async def members(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The audience rows of these customers, as column dicts."""
    ids, found = sorted(set(customer_ids)), {}
    for chunk in chunks(ids):
        result = await all_rows(
            session, sa_select(AUDIENCE).where(AUDIENCE.c.customer_id.in_(chunk))
        )
        found.update({row.customer_id: dict(row._mapping) for row in result})
    return found


async def consents(
    session: AsyncSession, customer_ids: Iterable[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The consent rows of these customers by (customer, channel), as column dicts."""
    ids, found = sorted(set(customer_ids)), {}
    for chunk in chunks(ids):
        result = await all_rows(
            session, sa_select(CONSENTS).where(CONSENTS.c.customer_id.in_(chunk))
        )
        found.update({(row.customer_id, row.channel): dict(row._mapping) for row in result})
    return found


async def recorded_event_ids(session: AsyncSession, event_ids: Iterable[str]) -> set[str]:
    """Which of these event ids are stored as activity already."""
    ids, found = sorted(set(event_ids)), set[str]()
    for chunk in chunks(ids):
        result = await session.exec(
            select(Activity.event_id).where(col(Activity.event_id).in_(chunk))
        )
        found.update(result.all())
    return found


async def recorded_orders(
    session: AsyncSession, customer_ids: Iterable[str], order_ids: Iterable[str]
) -> set[tuple[str, str]]:
    """(customer, order id) of the orders among these already stored."""
    customers, orders = sorted(set(customer_ids)), sorted(set(order_ids))
    found: set[tuple[str, str]] = set()
    for chunk in chunks(orders):
        result = await session.exec(
            select(Activity.customer_id, Activity.ref).where(
                Activity.event_type == "order.completed",
                col(Activity.ref).in_(chunk),
                col(Activity.customer_id).in_(customers),
            )
        )
        found.update((customer, ref) for customer, ref in result.all() if ref is not None)
    return found


async def insert_activities(
    session: AsyncSession,
    rows: Sequence[Mapping[str, Any]],
    items: Mapping[str, list[dict[str, Any]]],
) -> None:
    """Insert activity rows, and the product lines of each (`items` by event id)."""
    if not rows:
        return
    for chunk in chunks(rows, rows_per_statement(len(rows[0]))):
        await session.exec(insert(ACTIVITY), params=list(chunk))  # type: ignore[call-overload]
    # The ids of the rows with lines, read back by their unique event id: RETURNING in
    # parameter order makes SQLite insert one row per statement.
    ids: dict[str, int] = {}
    for part in chunks(list(items)):
        query = sa_select(ACTIVITY.c.event_id, ACTIVITY.c.id).where(ACTIVITY.c.event_id.in_(part))
        found = await session.exec(query)  # type: ignore[call-overload]
        ids.update(dict(found.all()))
    lines = [
        {**line, "activity_id": ids[event_id]}
        for event_id, event_lines in items.items()
        for line in event_lines
    ]
    for chunk in chunks(lines, rows_per_statement(len(lines[0])) if lines else 1):
        await session.exec(insert(ITEMS), params=list(chunk))


async def metrics(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What `refresh_metrics` reads from the activity rows, for many customers at once.

    Per customer: loyalty (points, balance) rows oldest first, the latest NPS and the
    latest activity time. Order values are profile's (customer.value.changed).
    """
    ids = sorted(set(customer_ids))
    found: dict[str, dict[str, Any]] = {
        cid: {
            "loyalty": [],
            "nps": None,
            "last_activity": None,
        }
        for cid in ids
    }
    a = ACTIVITY.c
    for chunk in chunks(ids):
        loyalty = await all_rows(
            session,
            sa_select(a.customer_id, a.value, a.balance)
            .where(a.customer_id.in_(chunk), a.event_type == "loyalty.points.earned")
            .order_by(a.customer_id, a.occurred_at, a.id),
        )
        for cid, value, balance in loyalty:
            found[cid]["loyalty"].append((Decimal(str(value or 0)), balance))
        surveys = await all_rows(
            session,
            sa_select(a.customer_id, a.value)
            .where(
                a.customer_id.in_(chunk),
                a.event_type == "survey.completed",
                a.value.is_not(None),
            )
            .order_by(a.customer_id, a.occurred_at.desc(), a.id.desc()),
        )
        for cid, value in surveys:
            if found[cid]["nps"] is None:
                found[cid]["nps"] = int(value)
        latest = await all_rows(
            session,
            sa_select(a.customer_id, func.max(a.occurred_at))
            .where(
                a.customer_id.in_(chunk),
                a.event_type.in_(
                    ("order.completed", "cart.updated", "interaction.tracked", "survey.completed")
                ),
            )
            .group_by(a.customer_id),
        )
        for cid, last in latest:
            found[cid]["last_activity"] = as_time(last)
    return found


def order_record(order: Activity, lines: Iterable[ActivityItem]) -> template_data.Record:
    """An order.completed activity and its lines, as templates see the order."""
    return template_data.order(
        order.ref or "",
        order.value,
        order.currency,
        as_time(order.occurred_at) or order.occurred_at,
        [line.model_dump() for line in lines],
    )


def popular_product(
    product_id: str, name: str | None, category: str | None, price: Any
) -> dict[str, Any]:
    """A popular product as the recommender keeps it (the price a string, to the cent)."""
    return {
        "product_id": product_id,
        "name": name or product_id,
        "category": category,
        "price": str(Decimal(str(price)).quantize(Decimal("0.01"))) if price is not None else None,
    }


async def acquisition_channels(
    session: AsyncSession,
) -> list[tuple[str | None, int, int, int, Any]]:
    """Per acquisition channel: customers, buyers, orders and revenue."""
    a = AUDIENCE.c
    result = await all_rows(
        session,
        sa_select(
            a.acquisition_channel,
            func.count(),
            func.count(case((a.orders > 0, 1))),
            func.coalesce(func.sum(a.orders), 0),
            func.coalesce(func.sum(a.revenue), 0),
        ).group_by(a.acquisition_channel),
    )
    return [tuple(row) for row in result]  # type: ignore[misc]


# What a merge and an erasure write in the audience.
AudienceRow = AudienceMember | ConsentState | Alias | ErasedCustomer


class AudienceStore(Protocol):
    def add(self, row: AudienceRow) -> None: ...

    async def delete(self, row: AudienceRow) -> None: ...

    async def resolve(self, customer_id: str) -> str | None:
        """The id that owns `customer_id` now, through merges; None if erased."""
        ...

    async def get_member(self, customer_id: str) -> AudienceMember | None: ...

    async def get_consent(self, customer_id: str, channel: str) -> ConsentState | None: ...

    async def withdrawn_customers(self, channel: str) -> set[str]:
        """Customers who revoked or unsubscribed from marketing on this channel."""
        ...

    async def audience_activity(self) -> list[tuple[str, datetime | None]]:
        """Every audience member with the time of their latest activity."""
        ...

    async def bought_products(self, customer_id: str) -> list[tuple[str, str | None]]:
        """(product_id, category) of every product the customer ordered."""
        ...

    async def popular_products(self, *, since: datetime, limit: int) -> list[dict[str, Any]]:
        """The products most customers bought since `since`, most popular first."""
        ...

    async def last_order(self, customer_id: str) -> template_data.Record | None:
        """The customer's most recent order with its lines, as templates see it."""
        ...

    # What a merge, an erasure and the export ask.

    async def get_erased_customer(self, customer_id: str) -> ErasedCustomer | None: ...

    async def get_alias(self, merged_id: str) -> Alias | None: ...

    async def aliases_of(self, customer_id: str) -> list[Alias]:
        """The ids merged into the customer."""
        ...

    async def repoint_aliases(self, old_id: str, new_id: str) -> None:
        """The ids merged into `old_id` now point at `new_id`."""
        ...

    async def consents_of(self, customer_id: str) -> list[ConsentState]: ...

    async def activities_of(self, customer_id: str) -> list[Activity]: ...

    async def activity_items_of(self, customer_id: str) -> list[ActivityItem]: ...

    async def move_activity(self, from_id: str, to_id: str) -> None:
        """The activity and product lines of `from_id` become `to_id`'s."""
        ...

    async def refresh_metrics(self, member: AudienceMember) -> None:
        """Recompute the member's points, survey and activity metrics from the activity."""
        ...

    async def forget_customer(self, customer_id: str) -> None:
        """Delete the customer's activity, lines, consents, audience row and the aliases
        pointing at them."""
        ...

    async def tombstone(self, customer_id: str) -> None:
        """The id is erased, from now (a tombstone of the id before is replaced)."""
        ...


class SqlAudienceStore(SqlStore):
    """The module's queries on the transaction's session."""

    async def resolve(self, customer_id: str) -> str | None:
        return await customer_ids_kit.resolve(
            customer_id,
            functools.partial(aliases, self.session),
            functools.partial(erased_among, self.session),
        )

    async def get_member(self, customer_id: str) -> AudienceMember | None:
        return await self.session.get(AudienceMember, customer_id)

    async def get_consent(self, customer_id: str, channel: str) -> ConsentState | None:
        return await self.session.get(ConsentState, (customer_id, channel))

    async def withdrawn_customers(self, channel: str) -> set[str]:
        result = await self.session.exec(
            select(ConsentState.customer_id).where(
                ConsentState.channel == channel,
                or_(
                    col(ConsentState.granted).is_(False),
                    col(ConsentState.suppressed_at).is_not(None),
                ),
            )
        )
        return set(result.all())

    async def audience_activity(self) -> list[tuple[str, datetime | None]]:
        result = await self.session.exec(
            select(AudienceMember.customer_id, AudienceMember.last_active_at)
        )
        return [(customer_id, as_time(last)) for customer_id, last in result.all()]

    async def bought_products(self, customer_id: str) -> list[tuple[str, str | None]]:
        result = await self.session.exec(
            select(ActivityItem.product_id, ActivityItem.category)
            .join(Activity, col(Activity.id) == col(ActivityItem.activity_id))
            .where(Activity.customer_id == customer_id, Activity.event_type == "order.completed")
        )
        return [(product, category) for product, category in result.all()]

    async def popular_products(self, *, since: datetime, limit: int) -> list[dict[str, Any]]:
        buyers = func.count(func.distinct(ActivityItem.customer_id))
        result = await all_rows(
            self.session,
            sa_select(
                col(ActivityItem.product_id),
                func.max(col(ActivityItem.name)),
                func.max(col(ActivityItem.category)),
                func.max(col(ActivityItem.price)),
                buyers,
            )
            .join(Activity, col(Activity.id) == col(ActivityItem.activity_id))
            .where(
                col(Activity.event_type) == "order.completed", col(Activity.occurred_at) >= since
            )
            .group_by(col(ActivityItem.product_id))
            .order_by(buyers.desc(), col(ActivityItem.product_id))
            .limit(limit),
        )
        return [
            popular_product(product_id, name, category, price)
            for product_id, name, category, price, _ in result
        ]

    async def last_order(self, customer_id: str) -> template_data.Record | None:
        result = await self.session.exec(
            select(Activity)
            .where(Activity.customer_id == customer_id, Activity.event_type == "order.completed")
            .order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc())
            .limit(1)
        )
        found = result.first()
        if found is None:
            return None
        lines = await self.session.exec(
            select(ActivityItem)
            .where(ActivityItem.activity_id == found.id)
            .order_by(col(ActivityItem.id))
        )
        return order_record(found, lines.all())

    async def get_erased_customer(self, customer_id: str) -> ErasedCustomer | None:
        return await self.session.get(ErasedCustomer, customer_id)

    async def get_alias(self, merged_id: str) -> Alias | None:
        return await self.session.get(Alias, merged_id)

    async def aliases_of(self, customer_id: str) -> list[Alias]:
        return await rows_of(self.session, Alias, customer_id)

    async def repoint_aliases(self, old_id: str, new_id: str) -> None:
        await self.session.exec(
            update(Alias).where(col(Alias.customer_id) == old_id).values(customer_id=new_id)
        )

    async def consents_of(self, customer_id: str) -> list[ConsentState]:
        result = await self.session.exec(
            select(ConsentState).where(ConsentState.customer_id == customer_id)
        )
        return list(result.all())

    async def activities_of(self, customer_id: str) -> list[Activity]:
        return await rows_of(self.session, Activity, customer_id)

    async def activity_items_of(self, customer_id: str) -> list[ActivityItem]:
        return await rows_of(self.session, ActivityItem, customer_id)

    async def move_activity(self, from_id: str, to_id: str) -> None:
        for model in (ActivityItem, Activity):
            await update_rows(self.session, model, from_id, {"customer_id": to_id})

    async def refresh_metrics(self, member: AudienceMember) -> None:
        # Imported when used: the projection reads this module's queries.
        from rapport_campaign.audience.projection import refresh_metrics

        await refresh_metrics(self.session, member)

    async def forget_customer(self, customer_id: str) -> None:
        for model in (ActivityItem, Activity, ConsentState, AudienceMember, Alias):
            await delete_rows(self.session, model, customer_id)

    async def tombstone(self, customer_id: str) -> None:
        await delete_rows(self.session, ErasedCustomer, customer_id)
        self.session.add(ErasedCustomer(customer_id=customer_id))
