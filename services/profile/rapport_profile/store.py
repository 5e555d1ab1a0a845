"""Every query profile makes."""

import functools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    tuple_,
    union_all,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.outbox import OutboxMessage
from rapport_profile.models import (
    Account,
    AccountMember,
    Consent,
    ConsentChange,
    Customer,
    CustomerMetrics,
    Disclosure,
    Erasure,
    ForecastModel,
    IdempotentRequest,
    Identity,
    Merge,
    Order,
    SegmentMembership,
    TimelineEntry,
    TrackedMessage,
)

# The projection writes on the tables, not the entities: no ORM object per event.
TIMELINE = TimelineEntry.__table__  # type: ignore[attr-defined]
ORDERS = Order.__table__  # type: ignore[attr-defined]
METRICS = CustomerMetrics.__table__  # type: ignore[attr-defined]
SEGMENTS = SegmentMembership.__table__  # type: ignore[attr-defined]
DISCLOSURES = Disclosure.__table__  # type: ignore[attr-defined]
# By dialect name: the INSERT that takes ON CONFLICT clauses.
INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

# Values bound in one IN list: far below SQLite's and asyncpg's limits on parameters.
IN_LIST = 500
# Rows in one multi-row INSERT: 500 rows of the widest table (12 columns) bind 6,000
# values, under SQLite's 32,766 and asyncpg's 32,767.
ROWS_PER_INSERT = 500


def _chunks(values: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), IN_LIST):
        yield ordered[start : start + IN_LIST]


async def _present(session: AsyncSession, column: Any, values: Collection[str]) -> set[str]:
    """Which of `values` the column holds, asked in IN lists of at most IN_LIST."""
    present: set[str] = set()
    for chunk in _chunks(values):
        result = await session.exec(select(column).where(column.in_(chunk)))
        present.update(result.all())
    return present


def _insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT on `table` in the session's dialect, so it can skip or update conflicts."""
    return INSERTS[session.get_bind().dialect.name](table)


def _row_chunks(rows: Sequence[Mapping[str, Any]]) -> Iterator[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), ROWS_PER_INSERT):
        yield rows[start : start + ROWS_PER_INSERT]


async def _send_rows(
    session: AsyncSession, statement: Any, rows: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """Execute an INSERT … RETURNING for `rows`, at most ROWS_PER_INSERT to a statement.

    Given a list of rows, SQLAlchemy sends an INSERT with RETURNING as multi-row VALUES
    built from one cached compilation (its "insertmanyvalues"); `.values([...])` would
    compile every batch anew, which costs more than the database's work.
    """
    returned: list[Any] = []
    for chunk in _row_chunks(rows):
        result = await session.exec(statement, params=list(chunk))
        returned.extend(result.all())
    return returned


async def _insert_new(session: AsyncSession, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert the rows whose key is not taken yet."""
    statement = _insert(session, table).on_conflict_do_nothing()
    await _send_rows(session, statement.returning(*table.primary_key.columns), rows)


async def _upsert(
    session: AsyncSession, table: Any, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    """Insert whole rows; where the key is taken, set only `columns` from them (a key once)."""
    statement = _insert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: statement.excluded[name] for name in columns},
    )
    await _send_rows(session, statement.returning(*table.primary_key.columns), rows)


# --- customers -------------------------------------------------------------------


async def get_customer(session: AsyncSession, customer_id: str) -> Customer | None:
    return await session.get(Customer, customer_id)


@functools.cache
def _customer_by_id() -> Any:
    """Built once: building a select costs more than running this one."""
    table = Customer.__table__  # type: ignore[attr-defined]
    return sa_select(table).where(table.c.id == bindparam("customer_id"))


async def customer_row(session: AsyncSession, customer_id: str) -> Any | None:
    """The customer's row as plain columns (no ORM object: a read, not a change)."""
    await session.flush()  # a row the caller added in this transaction is seen
    connection = await session.connection()
    result = await connection.execute(_customer_by_id(), {"customer_id": customer_id})
    return result.first()


async def lock_customer(session: AsyncSession, customer_id: str) -> Customer | None:
    """The customer row, locked for the transaction (where the database can)."""
    result = await session.exec(
        select(Customer).where(Customer.id == customer_id).with_for_update()
    )
    return result.first()


async def customers_among(session: AsyncSession, customer_ids: Collection[str]) -> list[Customer]:
    """The customer rows of those ids that have one, merged and erased ones included."""
    found: list[Customer] = []
    for chunk in _chunks(customer_ids):
        result = await session.exec(select(Customer).where(col(Customer.id).in_(chunk)))
        found.extend(result.all())
    return found


async def find_by_email(session: AsyncSession, email: str) -> Customer | None:
    result = await session.exec(select(Customer).where(Customer.email == email.lower()))
    return result.first()


async def find_by_external_ids(
    session: AsyncSession, external_ids: dict[str, str]
) -> list[Customer]:
    """Active customers sharing at least one (system, id) pair; JSON is compared in Python."""
    if not external_ids:
        return []
    result = await session.exec(select(Customer).where(Customer.status == "active"))
    pairs = set(external_ids.items())
    return [c for c in result.all() if pairs & set((c.external_ids or {}).items())]


def add(session: AsyncSession, row: SQLModel) -> None:
    session.add(row)


async def search_customers(
    session: AsyncSession,
    *,
    email: str | None,
    text: str | None,
    country: str | None,
    segment: str | None,
    tier: str | None,
    after: str | None,
    limit: int,
    phone: str | None = None,
    external_id: tuple[str, str] | None = None,
) -> list[Customer]:
    """Active customers matching every filter given, in id order after `after`."""
    query = select(Customer).where(Customer.status == "active")
    if email:
        query = query.where(Customer.email == email.strip().lower())
    if phone:
        query = query.where(Customer.phone == phone.strip())
    if external_id:
        system, value = external_id
        # The JSON path on every database (json_extract on SQLite, ->> on PostgreSQL).
        query = query.where(col(Customer.external_ids)[system].as_string() == value)
    if text:
        full_name = func.lower(Customer.first_name + " " + Customer.last_name)
        for word in text.lower().split():
            escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(full_name.like(f"%{escaped}%", escape="\\"))
    if country:
        query = query.where(Customer.country == country.upper())
    if segment:
        members = select(SegmentMembership.customer_id).where(
            or_(
                col(SegmentMembership.segment_id) == segment,
                col(SegmentMembership.segment_name) == segment,
            )
        )
        query = query.where(col(Customer.id).in_(members))
    if tier == "none":
        with_orders = select(CustomerMetrics.customer_id).where(CustomerMetrics.orders > 0)
        query = query.where(col(Customer.id).not_in(with_orders))
    elif tier is not None:
        in_tier = select(CustomerMetrics.customer_id).where(
            CustomerMetrics.orders > 0, CustomerMetrics.tier == tier
        )
        query = query.where(col(Customer.id).in_(in_tier))
    if after:
        query = query.where(Customer.id > after)
    result = await session.exec(query.order_by(col(Customer.id)).limit(limit))
    return list(result.all())


async def customers_merged_into(session: AsyncSession, customer_id: str) -> list[Customer]:
    result = await session.exec(select(Customer).where(Customer.merged_into == customer_id))
    return list(result.all())


async def all_customers(session: AsyncSession) -> list[Customer]:
    result = await session.exec(select(Customer).where(Customer.status == "active"))
    return list(result.all())


# --- idempotency -------------------------------------------------------------------


async def get_idempotent(session: AsyncSession, key: str) -> IdempotentRequest | None:
    return await session.get(IdempotentRequest, key)


# --- identities and merges -----------------------------------------------------------


async def get_identity(session: AsyncSession, kind: str, value: str) -> Identity | None:
    return await session.get(Identity, (kind, value))


async def identities_among(
    session: AsyncSession, kind: str, values: Collection[str]
) -> list[Identity]:
    """The identities of one kind with any of these values."""
    found: list[Identity] = []
    for chunk in _chunks(values):
        result = await session.exec(
            select(Identity).where(col(Identity.kind) == kind, col(Identity.value).in_(chunk))
        )
        found.extend(result.all())
    return found


async def identities_of(session: AsyncSession, customer_id: str) -> list[Identity]:
    result = await session.exec(select(Identity).where(Identity.customer_id == customer_id))
    return list(result.all())


async def repoint_identities(session: AsyncSession, old: str, new: str) -> list[tuple[str, str]]:
    """Point every identity of `old` at `new`; returns the moved (kind, value) pairs."""
    moved = [(i.kind, i.value) for i in await identities_of(session, old)]
    await session.exec(
        update(Identity).where(col(Identity.customer_id) == old).values(customer_id=new)
    )
    return moved


async def move_identities(
    session: AsyncSession, pairs: Sequence[Sequence[str]], customer_id: str
) -> None:
    for kind, value in pairs:
        await session.exec(
            update(Identity)
            .where(col(Identity.kind) == kind, col(Identity.value) == value)
            .values(customer_id=customer_id)
        )


async def delete_identity(session: AsyncSession, kind: str, value: str) -> None:
    await session.exec(
        delete(Identity).where(col(Identity.kind) == kind, col(Identity.value) == value)
    )


def _owners_and_erasures() -> Any:
    """Per subject id its alias row, and which of the subjects or their owners were erased."""
    subjects = bindparam("subjects", type_=String(), expanding=True)
    alias_kind = bindparam("alias_kind", type_=String())
    is_alias = and_(col(Identity.kind) == alias_kind, col(Identity.value).in_(subjects))
    aliases = select(literal("alias"), col(Identity.value), col(Identity.customer_id)).where(
        is_alias
    )
    owners = select(col(Identity.customer_id)).where(is_alias)
    erased = select(literal("erased"), col(Erasure.customer_id), col(Erasure.customer_id)).where(
        or_(col(Erasure.customer_id).in_(subjects), col(Erasure.customer_id).in_(owners))
    )
    return union_all(aliases, erased)


# Built once: every run of events the consumer applies asks it.
OWNERS_AND_ERASURES = _owners_and_erasures()


async def owners_and_erasures(
    session: AsyncSession, customer_ids: Collection[str], alias_kind: str
) -> dict[str, tuple[str, bool]]:
    """For each id: who owns it now (its alias, else itself) and whether either was erased.

    One statement per IN_LIST ids, binding them three times (well under the limits).
    """
    owner_of: dict[str, str] = {}
    erased: set[str] = set()
    for chunk in _chunks(customer_ids):
        params = {"subjects": chunk, "alias_kind": alias_kind}
        for what, subject, owner in await session.exec(OWNERS_AND_ERASURES, params=params):
            if what == "alias":
                owner_of[subject] = owner
            else:
                erased.add(subject)
    answers = {}
    for subject in customer_ids:
        owner = owner_of.get(subject, subject)
        answers[subject] = (owner, subject in erased or owner in erased)
    return answers


async def open_merge(session: AsyncSession, customer_id: str, merged_id: str) -> Merge | None:
    result = await session.exec(
        select(Merge)
        .where(
            Merge.customer_id == customer_id,
            Merge.merged_customer_id == merged_id,
            col(Merge.undone_at).is_(None),
        )
        .order_by(col(Merge.merged_at).desc())
    )
    return result.first()


async def merges_of(session: AsyncSession, customer_id: str) -> list[Merge]:
    result = await session.exec(
        select(Merge).where(
            or_(col(Merge.customer_id) == customer_id, col(Merge.merged_customer_id) == customer_id)
        )
    )
    return list(result.all())


# --- rows that follow a customer -----------------------------------------------------

# Tables whose rows move with a merge: (model, owner column, original-subject column).
FOLLOWING: tuple[tuple[Any, str, str | None], ...] = (
    (TimelineEntry, "customer_id", "subject_id"),
    (Order, "customer_id", "subject_id"),
    (Disclosure, "customer_id", "subject_id"),
    (TrackedMessage, "customer_id", None),
)


async def move_rows(session: AsyncSession, old: str, new: str) -> None:
    """Hand every row of `old` that follows a customer to `new`."""
    for model, owner, _subject in FOLLOWING:
        await session.exec(update(model).where(getattr(model, owner) == old).values({owner: new}))
    # Segment memberships are keyed by customer: keep one row per segment.
    theirs = await segments_of(session, old)
    mine = {m.segment_id for m in await segments_of(session, new)}
    for membership in theirs:
        if membership.segment_id not in mine:
            session.add(
                SegmentMembership(
                    customer_id=new,
                    segment_id=membership.segment_id,
                    segment_name=membership.segment_name,
                    entered_at=membership.entered_at,
                )
            )
    await session.exec(delete(SegmentMembership).where(col(SegmentMembership.customer_id) == old))
    # So are account memberships.
    joined = {m.account_id for m in await memberships_of(session, new)}
    for member in await memberships_of(session, old):
        if member.account_id not in joined:
            session.add(
                AccountMember(
                    customer_id=new, account_id=member.account_id, joined_at=member.joined_at
                )
            )
    await session.exec(delete(AccountMember).where(col(AccountMember.customer_id) == old))


async def move_rows_back(
    session: AsyncSession, current: str, subjects: Sequence[str], restored: str
) -> None:
    """Return the rows published under `subjects` from `current` to `restored`."""
    if not subjects:
        return
    for model, owner, subject in FOLLOWING:
        if subject is None:
            continue
        await session.exec(
            update(model)
            .where(getattr(model, owner) == current, getattr(model, subject).in_(subjects))
            .values({owner: restored})
        )


# --- consents ------------------------------------------------------------------------


async def consents_of(session: AsyncSession, customer_id: str) -> list[Consent]:
    result = await session.exec(
        select(Consent)
        .where(Consent.customer_id == customer_id)
        .order_by(col(Consent.purpose), col(Consent.channel), col(Consent.partner_id))
    )
    return list(result.all())


async def consents_among(
    session: AsyncSession, customer_ids: Collection[str], purpose: str
) -> list[Consent]:
    """The consents for `purpose` of any of these customers."""
    found: list[Consent] = []
    for chunk in _chunks(customer_ids):
        result = await session.exec(
            select(Consent).where(col(Consent.customer_id).in_(chunk), Consent.purpose == purpose)
        )
        found.extend(result.all())
    return found


async def get_consent(
    session: AsyncSession, customer_id: str, purpose: str, channel: str, partner_id: str
) -> Consent | None:
    result = await session.exec(
        select(Consent).where(
            Consent.customer_id == customer_id,
            Consent.purpose == purpose,
            Consent.channel == channel,
            Consent.partner_id == partner_id,
        )
    )
    return result.first()


async def consent_history(session: AsyncSession, customer_id: str) -> list[ConsentChange]:
    result = await session.exec(
        select(ConsentChange)
        .where(ConsentChange.customer_id == customer_id)
        .order_by(col(ConsentChange.version), col(ConsentChange.id))
    )
    return list(result.all())


async def delete_consents(session: AsyncSession, customer_id: str) -> None:
    await session.exec(delete(Consent).where(col(Consent.customer_id) == customer_id))


# --- timeline ------------------------------------------------------------------------


async def add_timeline_entries(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert the entries whose event is not on the timeline yet."""
    await _insert_new(session, TIMELINE, rows)


async def timeline_page(
    session: AsyncSession,
    customer_id: str,
    *,
    types: Sequence[str],
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[TimelineEntry]:
    query = select(TimelineEntry).where(TimelineEntry.customer_id == customer_id)
    if types:
        query = query.where(col(TimelineEntry.type).in_(types))
    if before is not None:
        at, event_id = before
        query = query.where(
            or_(
                col(TimelineEntry.occurred_at) < at,
                and_(col(TimelineEntry.occurred_at) == at, col(TimelineEntry.id) < event_id),
            )
        )
    query = query.order_by(col(TimelineEntry.occurred_at).desc(), col(TimelineEntry.id).desc())
    result = await session.exec(query.limit(limit))
    return list(result.all())


async def has_timeline(session: AsyncSession, customer_id: str) -> bool:
    result = await session.exec(
        select(TimelineEntry.id).where(TimelineEntry.customer_id == customer_id).limit(1)
    )
    return result.first() is not None


# --- orders and metrics ----------------------------------------------------------------


async def add_orders(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert the orders not counted yet; returns the customers who got one."""
    statement = _insert(session, ORDERS).on_conflict_do_nothing()
    inserted = await _send_rows(session, statement.returning(ORDERS.c.customer_id), rows)
    return {row[0] for row in inserted}


def _totals() -> Any:
    cost = func.coalesce(Order.cost, 0)
    return select(  # type: ignore[call-overload]
        func.count(),
        func.coalesce(func.sum(Order.revenue), 0),
        func.coalesce(func.sum(Order.revenue - cost), 0),
        func.min(Order.occurred_at),
        func.max(Order.occurred_at),
    )


async def order_totals(session: AsyncSession, customer_id: str) -> tuple[Any, ...]:
    """(count, revenue, cost of goods or revenue when unknown, first, last) of a customer."""
    result = await session.exec(_totals().where(Order.customer_id == customer_id))
    return tuple(result.one())


async def order_totals_of(
    session: AsyncSession, customer_ids: Collection[str]
) -> dict[str, tuple[Any, ...]]:
    """`order_totals` of each of these customers that has orders."""
    totals: dict[str, tuple[Any, ...]] = {}
    for chunk in _chunks(customer_ids):
        query = (
            _totals()
            .add_columns(col(Order.customer_id))
            .where(col(Order.customer_id).in_(chunk))
            .group_by(col(Order.customer_id))
        )
        for *values, customer_id in await session.exec(query):
            totals[customer_id] = tuple(values)
    return totals


async def get_metrics(session: AsyncSession, customer_id: str) -> CustomerMetrics | None:
    return await session.get(CustomerMetrics, customer_id)


async def loyalty_points_of(session: AsyncSession, customer_ids: Collection[str]) -> dict[str, int]:
    """The loyalty balance of each of these customers that has a metrics row."""
    points: dict[str, int] = {}
    for chunk in _chunks(customer_ids):
        query = select(col(CustomerMetrics.customer_id), col(CustomerMetrics.loyalty_points))
        for customer_id, balance in await session.exec(
            query.where(col(CustomerMetrics.customer_id).in_(chunk))
        ):
            points[customer_id] = balance
    return points


async def upsert_metrics(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    """Insert whole metrics rows; where a customer has one, set only `columns` from them."""
    await _upsert(session, METRICS, rows, columns)


async def metrics_of_active(session: AsyncSession) -> list[CustomerMetrics]:
    active = select(Customer.id).where(Customer.status == "active")
    result = await session.exec(
        select(CustomerMetrics).where(col(CustomerMetrics.customer_id).in_(active))
    )
    return list(result.all())


async def orders_between(
    session: AsyncSession, start: datetime | None, end: datetime | None
) -> list[tuple[Order, Customer | None]]:
    """Orders in [start, end) with their (still active) customer."""
    query = select(Order, Customer).join(
        Customer, col(Customer.id) == col(Order.customer_id), isouter=True
    )
    if start is not None:
        query = query.where(col(Order.occurred_at) >= start)
    if end is not None:
        query = query.where(col(Order.occurred_at) < end)
    result = await session.exec(query)
    return [(row[0], row[1]) for row in result.all()]


async def customers_created_between(
    session: AsyncSession, start: datetime | None, end: datetime | None
) -> list[Customer]:
    query = select(Customer).where(col(Customer.status).in_(("active", "merged")))
    # A merged customer was not a new one: only count the survivor.
    query = query.where(col(Customer.merged_into).is_(None))
    if start is not None:
        query = query.where(col(Customer.created_at) >= start)
    if end is not None:
        query = query.where(col(Customer.created_at) < end)
    result = await session.exec(query)
    return list(result.all())


# --- segments, disclosures, tracking ---------------------------------------------------


async def segments_of(session: AsyncSession, customer_id: str) -> list[SegmentMembership]:
    result = await session.exec(
        select(SegmentMembership).where(SegmentMembership.customer_id == customer_id)
    )
    return list(result.all())


async def set_segments(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Each row's membership, as the latest segment.entered told it (one row per key)."""
    await _upsert(session, SEGMENTS, rows, ("segment_name", "entered_at"))


async def delete_segments(session: AsyncSession, keys: Iterable[tuple[str, str]]) -> None:
    """Delete these (customer, segment) memberships."""
    ordered = sorted(keys)
    for start in range(0, len(ordered), IN_LIST):
        await session.exec(
            delete(SegmentMembership).where(
                tuple_(col(SegmentMembership.customer_id), col(SegmentMembership.segment_id)).in_(
                    ordered[start : start + IN_LIST]
                )
            )
        )


async def add_disclosures(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert the disclosures not in the ledger yet."""
    await _insert_new(session, DISCLOSURES, rows)


async def disclosures_of(session: AsyncSession, customer_id: str) -> list[Disclosure]:
    result = await session.exec(
        select(Disclosure)
        .where(Disclosure.customer_id == customer_id)
        .order_by(col(Disclosure.disclosed_at).desc(), col(Disclosure.id))
    )
    return list(result.all())


async def seen_message_ids(session: AsyncSession, message_ids: Collection[str]) -> set[str]:
    """Which of these tracking messageIds were applied before."""
    return await _present(session, col(TrackedMessage.message_id), message_ids)


# --- erasure ---------------------------------------------------------------------------


async def get_erasure(session: AsyncSession, customer_id: str) -> Erasure | None:
    return await session.get(Erasure, customer_id)


async def erased_among(session: AsyncSession, customer_ids: Collection[str]) -> set[str]:
    """Which of these ids were erased."""
    return await _present(session, col(Erasure.customer_id), customer_ids)


async def rows_of(session: AsyncSession, model: Any, column: str, customer_id: str) -> list[Any]:
    result = await session.exec(select(model).where(getattr(model, column) == customer_id))
    return list(result.all())


async def delete_rows(session: AsyncSession, model: Any, column: str, customer_id: str) -> None:
    await session.exec(delete(model).where(getattr(model, column) == customer_id))


async def outbox_id(session: AsyncSession, event_id: str) -> int | None:
    """The outbox row id of an event this service published, if the row is still there."""
    result = await session.exec(
        select(OutboxMessage.id).where(col(OutboxMessage.event_id) == event_id)
    )
    return result.first()


async def delete_outbox_rows(
    session: AsyncSession, keys: Sequence[str], *, up_to_id: int | None = None
) -> int:
    """Delete the outbox rows about `keys` that are sent or parked, or (given) at or before
    `up_to_id`; returns how many. A parked row about an erased customer must not go out
    when unparked."""
    query = delete(OutboxMessage).where(col(OutboxMessage.key).in_(keys))
    if up_to_id is None:
        query = query.where(
            or_(col(OutboxMessage.sent_at).is_not(None), col(OutboxMessage.parked_at).is_not(None))
        )
    else:
        query = query.where(col(OutboxMessage.id) <= up_to_id)
    return int((await session.exec(query)).rowcount)


async def count_outbox_rows(session: AsyncSession, keys: Sequence[str]) -> int:
    result = await session.exec(
        select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.key).in_(keys))
    )
    return int(result.one())


# --- accounts ----------------------------------------------------------------------------


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


async def memberships_of(session: AsyncSession, customer_id: str) -> list[AccountMember]:
    result = await session.exec(
        select(AccountMember).where(AccountMember.customer_id == customer_id)
    )
    return list(result.all())


async def accounts_of(session: AsyncSession, customer_id: str) -> list[Account]:
    """The accounts the customer belongs to, oldest membership first."""
    result = await session.exec(
        select(Account)
        .join(AccountMember, col(AccountMember.account_id) == col(Account.id))
        .where(AccountMember.customer_id == customer_id)
        .order_by(col(AccountMember.joined_at), col(Account.id))
    )
    return list(result.all())


# --- forecasts -----------------------------------------------------------------------

FORECAST_MODELS = ForecastModel.__table__  # type: ignore[attr-defined]


async def forecast_models(session: AsyncSession, limit: int) -> list[ForecastModel]:
    """The stored forecast models, the most recently fitted first."""
    result = await session.exec(
        select(ForecastModel).order_by(col(ForecastModel.fitted_at).desc()).limit(limit)
    )
    return list(result.all())


async def save_forecast_model(
    session: AsyncSession, key: str, reply: dict[str, Any], fitted_at: datetime
) -> None:
    """Keep the latest fitted model of `key`."""
    row = {"key": key, "reply": reply, "fitted_at": fitted_at}
    await _upsert(session, FORECAST_MODELS, [row], ["reply", "fitted_at"])
