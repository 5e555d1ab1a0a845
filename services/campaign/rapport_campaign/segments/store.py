"""Every query of segments: the segments, their members, and testing customers against rules.

`SegmentStore` is what the segments' use cases ask of it; `SqlSegmentStore` answers on the
transaction's session, and `rapport_campaign.testing` has the in-memory fake. The module's
functions stay for what keeps membership current as events arrive (`service.reevaluate`
and `reevaluate_many`, run by the handlers and the projection on their session), and for
the scheduler's refresh; a merge, an erasure and the export ask the store."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.audience.store import AUDIENCE
from rapport_campaign.segments import rules, sql
from rapport_campaign.segments.models import Segment, SegmentMember
from rapport_campaign.shared import BULK, all_rows, chunks, delete_rows, rows_of
from rapport_events.unit_of_work import SqlStore

MEMBERS = SegmentMember.__table__  # type: ignore[attr-defined]
# Any number well away from other services' advisory locks on a shared server.
SEGMENT_LOCK_KEY = 7_270_002


async def lock_segments(session: AsyncSession) -> None:
    """Serialise membership writers, so a recompute and an event never interleave.

    SQLite's BEGIN IMMEDIATE already lets one writer in at a time; PostgreSQL needs a lock.
    """
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        lock = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=SEGMENT_LOCK_KEY)
        await session.exec(lock)  # type: ignore[call-overload]


async def matching_ids(session: AsyncSession, condition: ColumnElement[bool]) -> set[str]:
    result = await session.exec(select(AUDIENCE.c.customer_id).where(condition))
    return set(result.all())


async def count_matching(
    session: AsyncSession, condition: ColumnElement[bool], sample: int
) -> tuple[int, list[str]]:
    count = await session.exec(select(func.count()).where(condition).select_from(AUDIENCE))
    ids = await session.exec(
        select(AUDIENCE.c.customer_id)
        .where(condition)
        .order_by(AUDIENCE.c.customer_id)
        .limit(sample)
    )
    return int(count.one()), list(ids.all())


async def evaluate_customer(
    session: AsyncSession, customer_id: str, conditions: Mapping[str, ColumnElement[bool]]
) -> dict[str, bool]:
    """Which of the conditions one customer meets, in one query."""
    if not conditions:
        return {}
    names = list(conditions)
    columns: list[KeyedColumnElement[Any]] = [
        case((conditions[name], 1), else_=0).label(f"c{index}") for index, name in enumerate(names)
    ]
    rows = await all_rows(
        session,
        sa_select(*columns).select_from(AUDIENCE).where(AUDIENCE.c.customer_id == customer_id),
    )
    row = rows[0] if rows else None
    if row is None:
        return dict.fromkeys(names, False)
    return {name: bool(value) for name, value in zip(names, row, strict=True)}


async def get_segment(session: AsyncSession, segment_id: str) -> Segment | None:
    return await session.get(Segment, segment_id)


async def list_segments(session: AsyncSession) -> list[Segment]:
    result = await session.exec(select(Segment).order_by(col(Segment.created_at), col(Segment.id)))
    return list(result.all())


async def segments_depending_on(session: AsyncSession, segment_id: str) -> list[Segment]:
    return [s for s in await list_segments(session) if segment_id in (s.depends_on or [])]


async def segments_to_refresh(session: AsyncSession, older_than: datetime) -> list[Segment]:
    """New segments not yet reconciled, and clock-dependent ones due for a recompute."""
    result = await session.exec(
        select(Segment)
        .where(
            or_(
                col(Segment.refreshed_at).is_(None),
                and_(col(Segment.time_dependent).is_(True), col(Segment.refreshed_at) < older_than),
            )
        )
        .order_by(col(Segment.created_at), col(Segment.id))
    )
    return list(result.all())


async def evaluate_customers(
    session: AsyncSession,
    customer_ids: Sequence[str],
    conditions: Mapping[str, ColumnElement[bool]],
) -> dict[str, dict[str, bool]]:
    """Which of the conditions each customer meets, one query per chunk of customers."""
    names = list(conditions)
    found = {cid: dict.fromkeys(names, False) for cid in customer_ids}
    if not names:
        return found
    columns: list[KeyedColumnElement[Any]] = [
        case((conditions[name], 1), else_=0).label(f"c{index}") for index, name in enumerate(names)
    ]
    for chunk in chunks(sorted(set(customer_ids))):
        rows = await all_rows(
            session,
            sa_select(AUDIENCE.c.customer_id, *columns).where(AUDIENCE.c.customer_id.in_(chunk)),
        )
        for cid, *values in rows:
            found[cid] = {name: bool(value) for name, value in zip(names, values, strict=True)}
    return found


async def memberships(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, set[str]]:
    """The segments each of these customers is in."""
    ids = sorted(set(customer_ids))
    found: dict[str, set[str]] = {cid: set() for cid in ids}
    for chunk in chunks(ids):
        result = await session.exec(
            select(MEMBERS.c.customer_id, MEMBERS.c.segment_id).where(
                MEMBERS.c.customer_id.in_(chunk)
            )
        )
        for cid, segment_id in result.all():
            found[cid].add(segment_id)
    return found


async def member_ids(session: AsyncSession, segment_id: str) -> set[str]:
    result = await session.exec(
        select(MEMBERS.c.customer_id).where(MEMBERS.c.segment_id == segment_id)
    )
    return set(result.all())


async def memberships_of(session: AsyncSession, customer_id: str) -> set[str]:
    result = await session.exec(
        select(MEMBERS.c.segment_id).where(MEMBERS.c.customer_id == customer_id)
    )
    return set(result.all())


async def add_members(
    session: AsyncSession, segment_id: str, customer_ids: Iterable[str], at: datetime
) -> None:
    rows = [
        {"segment_id": segment_id, "customer_id": cid, "entered_at": at} for cid in customer_ids
    ]
    for start in range(0, len(rows), BULK):
        await session.exec(insert(MEMBERS), params=rows[start : start + BULK])


async def remove_members(
    session: AsyncSession, segment_id: str, customer_ids: Iterable[str]
) -> None:
    ids = list(customer_ids)
    for start in range(0, len(ids), BULK):
        await session.exec(
            delete(MEMBERS).where(
                MEMBERS.c.segment_id == segment_id,
                MEMBERS.c.customer_id.in_(ids[start : start + BULK]),
            )
        )


async def member_count(session: AsyncSession, segment_id: str) -> int:
    result = await session.exec(
        select(func.count()).select_from(MEMBERS).where(MEMBERS.c.segment_id == segment_id)
    )
    return int(result.one())


async def member_counts(session: AsyncSession) -> dict[str, int]:
    result = await session.exec(
        select(MEMBERS.c.segment_id, func.count()).group_by(MEMBERS.c.segment_id)
    )
    return {segment_id: int(count) for segment_id, count in result.all()}


async def member_page(
    session: AsyncSession, segment_id: str, *, after: str | None, limit: int
) -> list[SegmentMember]:
    query = select(SegmentMember).where(SegmentMember.segment_id == segment_id)
    if after is not None:
        query = query.where(SegmentMember.customer_id > after)
    result = await session.exec(query.order_by(col(SegmentMember.customer_id)).limit(limit))
    return list(result.all())


async def delete_segment_members(session: AsyncSession, segment_id: str) -> None:
    await session.exec(delete(MEMBERS).where(MEMBERS.c.segment_id == segment_id))


class SegmentStore(Protocol):
    def add(self, row: Segment) -> None: ...

    async def delete(self, row: Segment) -> None: ...

    async def lock_segments(self) -> None:
        """Membership writers one at a time, until the transaction ends."""
        ...

    async def get_segment(self, segment_id: str) -> Segment | None: ...

    async def list_segments(self) -> list[Segment]:
        """Every segment, oldest first."""
        ...

    async def segments_depending_on(self, segment_id: str) -> list[Segment]:
        """The segments whose rule uses this one."""
        ...

    async def matching_ids(
        self, rule: rules.Rule, now: datetime, segment_rules: Mapping[str, rules.Rule]
    ) -> set[str]:
        """Every audience member the rule matches at `now` (`segment_rules` for references)."""
        ...

    async def count_matching(
        self,
        rule: rules.Rule,
        now: datetime,
        segment_rules: Mapping[str, rules.Rule],
        sample: int,
    ) -> tuple[int, list[str]]:
        """How many the rule matches, and the first `sample` of them by id."""
        ...

    async def member_ids(self, segment_id: str) -> set[str]: ...

    async def memberships_of(self, customer_id: str) -> set[str]:
        """The ids of the segments the customer is in."""
        ...

    async def add_members(self, segment_id: str, customer_ids: Iterable[str], at: datetime) -> None:
        """New members, none of them a member already."""
        ...

    async def remove_members(self, segment_id: str, customer_ids: Iterable[str]) -> None: ...

    async def member_count(self, segment_id: str) -> int: ...

    async def member_counts(self) -> dict[str, int]:
        """Members per segment; a segment with none is left out."""
        ...

    async def member_page(
        self, segment_id: str, *, after: str | None, limit: int
    ) -> list[SegmentMember]:
        """Up to `limit` members by id, after the id `after`."""
        ...

    async def delete_segment_members(self, segment_id: str) -> None: ...

    async def members_of_customer(self, customer_id: str) -> list[SegmentMember]:
        """The customer's memberships, as rows (the export)."""
        ...

    async def forget_memberships(self, customer_id: str) -> None:
        """Delete the customer's memberships, publishing nothing (an erasure)."""
        ...


class SqlSegmentStore(SqlStore):
    """The module's queries on the transaction's session; a rule becomes one SQL condition
    (`segments.sql`) that the database tests every audience member against."""

    async def lock_segments(self) -> None:
        await lock_segments(self.session)

    async def get_segment(self, segment_id: str) -> Segment | None:
        return await get_segment(self.session, segment_id)

    async def list_segments(self) -> list[Segment]:
        return await list_segments(self.session)

    async def segments_depending_on(self, segment_id: str) -> list[Segment]:
        return await segments_depending_on(self.session, segment_id)

    async def matching_ids(
        self, rule: rules.Rule, now: datetime, segment_rules: Mapping[str, rules.Rule]
    ) -> set[str]:
        condition = sql.rule_condition(rule, now=now, segment_rules=segment_rules)
        return await matching_ids(self.session, condition)

    async def count_matching(
        self,
        rule: rules.Rule,
        now: datetime,
        segment_rules: Mapping[str, rules.Rule],
        sample: int,
    ) -> tuple[int, list[str]]:
        condition = sql.rule_condition(rule, now=now, segment_rules=segment_rules)
        return await count_matching(self.session, condition, sample)

    async def member_ids(self, segment_id: str) -> set[str]:
        return await member_ids(self.session, segment_id)

    async def memberships_of(self, customer_id: str) -> set[str]:
        return await memberships_of(self.session, customer_id)

    async def add_members(self, segment_id: str, customer_ids: Iterable[str], at: datetime) -> None:
        await add_members(self.session, segment_id, customer_ids, at)

    async def remove_members(self, segment_id: str, customer_ids: Iterable[str]) -> None:
        await remove_members(self.session, segment_id, customer_ids)

    async def member_count(self, segment_id: str) -> int:
        return await member_count(self.session, segment_id)

    async def member_counts(self) -> dict[str, int]:
        return await member_counts(self.session)

    async def member_page(
        self, segment_id: str, *, after: str | None, limit: int
    ) -> list[SegmentMember]:
        return await member_page(self.session, segment_id, after=after, limit=limit)

    async def delete_segment_members(self, segment_id: str) -> None:
        await delete_segment_members(self.session, segment_id)

    async def members_of_customer(self, customer_id: str) -> list[SegmentMember]:
        return await rows_of(self.session, SegmentMember, customer_id)

    async def forget_memberships(self, customer_id: str) -> None:
        await delete_rows(self.session, SegmentMember, customer_id)
