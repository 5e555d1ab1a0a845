"""Every query of segments: the segments, their members, and testing customers against rules.

`SegmentStore` is what the segments' use cases ask of it (the routes, the scheduler's
refresh, the re-evaluation as events arrive, a merge, an erasure and the export);
`SqlSegmentStore` answers on the transaction's session, and `rapport_campaign.testing` has
the in-memory fake."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, case, delete, func, insert, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlmodel import col, select

from rapport_campaign.audience.store import AUDIENCE
from rapport_campaign.segments import rules, sql
from rapport_campaign.segments.models import Segment, SegmentMember
from rapport_campaign.shared import BULK, all_rows, chunks, delete_rows, rows_of
from rapport_events.unit_of_work import SqlStore

MEMBERS = SegmentMember.__table__  # type: ignore[attr-defined]
# Any number well away from other services' advisory locks on a shared server.
SEGMENT_LOCK_KEY = 7_270_002


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

    async def segments_to_refresh(self, older_than: datetime) -> list[Segment]:
        """New segments not yet reconciled, and clock-dependent ones refreshed before
        `older_than`, oldest first."""
        ...

    async def matching_ids(
        self, rule: rules.Rule, now: datetime, segment_rules: Mapping[str, rules.Rule]
    ) -> set[str]:
        """Every audience member the rule matches at `now` (`segment_rules` for references)."""
        ...

    async def evaluate_customers(
        self,
        customer_ids: Sequence[str],
        segment_ids: Sequence[str],
        now: datetime,
        segment_rules: Mapping[str, rules.Rule],
    ) -> dict[str, dict[str, bool]]:
        """Per customer, which of these segments' rules they meet at `now`."""
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

    async def memberships(self, customer_ids: Iterable[str]) -> dict[str, set[str]]:
        """The ids of the segments each of these customers is in."""
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
    """A rule becomes one SQL condition (`segments.sql`) that the database tests every
    audience member against."""

    async def lock_segments(self) -> None:
        # SQLite's BEGIN IMMEDIATE already lets one writer in at a time; PostgreSQL needs
        # a lock, so a recompute and an event never interleave.
        bind = self.session.bind
        if bind is not None and bind.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=SEGMENT_LOCK_KEY)
            await self.session.exec(lock)  # type: ignore[call-overload]

    async def get_segment(self, segment_id: str) -> Segment | None:
        return await self.session.get(Segment, segment_id)

    async def list_segments(self) -> list[Segment]:
        result = await self.session.exec(
            select(Segment).order_by(col(Segment.created_at), col(Segment.id))
        )
        return list(result.all())

    async def segments_depending_on(self, segment_id: str) -> list[Segment]:
        return [s for s in await self.list_segments() if segment_id in (s.depends_on or [])]

    async def segments_to_refresh(self, older_than: datetime) -> list[Segment]:
        result = await self.session.exec(
            select(Segment)
            .where(
                or_(
                    col(Segment.refreshed_at).is_(None),
                    and_(
                        col(Segment.time_dependent).is_(True),
                        col(Segment.refreshed_at) < older_than,
                    ),
                )
            )
            .order_by(col(Segment.created_at), col(Segment.id))
        )
        return list(result.all())

    async def matching_ids(
        self, rule: rules.Rule, now: datetime, segment_rules: Mapping[str, rules.Rule]
    ) -> set[str]:
        condition = sql.rule_condition(rule, now=now, segment_rules=segment_rules)
        result = await self.session.exec(select(AUDIENCE.c.customer_id).where(condition))
        return set(result.all())

    async def count_matching(
        self,
        rule: rules.Rule,
        now: datetime,
        segment_rules: Mapping[str, rules.Rule],
        sample: int,
    ) -> tuple[int, list[str]]:
        condition = sql.rule_condition(rule, now=now, segment_rules=segment_rules)
        count = await self.session.exec(select(func.count()).where(condition).select_from(AUDIENCE))
        ids = await self.session.exec(
            select(AUDIENCE.c.customer_id)
            .where(condition)
            .order_by(AUDIENCE.c.customer_id)
            .limit(sample)
        )
        return int(count.one()), list(ids.all())

    async def evaluate_customers(
        self,
        customer_ids: Sequence[str],
        segment_ids: Sequence[str],
        now: datetime,
        segment_rules: Mapping[str, rules.Rule],
    ) -> dict[str, dict[str, bool]]:
        # One column per rule, one query per chunk of customers.
        names = list(segment_ids)
        found = {cid: dict.fromkeys(names, False) for cid in customer_ids}
        if not names:
            return found
        columns: list[KeyedColumnElement[Any]] = [
            case(
                (sql.rule_condition(segment_rules[name], now=now, segment_rules=segment_rules), 1),
                else_=0,
            ).label(f"c{index}")
            for index, name in enumerate(names)
        ]
        for chunk in chunks(sorted(set(customer_ids))):
            rows = await all_rows(
                self.session,
                sa_select(AUDIENCE.c.customer_id, *columns).where(
                    AUDIENCE.c.customer_id.in_(chunk)
                ),
            )
            for cid, *values in rows:
                found[cid] = {name: bool(value) for name, value in zip(names, values, strict=True)}
        return found

    async def member_ids(self, segment_id: str) -> set[str]:
        result = await self.session.exec(
            select(MEMBERS.c.customer_id).where(MEMBERS.c.segment_id == segment_id)
        )
        return set(result.all())

    async def memberships_of(self, customer_id: str) -> set[str]:
        return (await self.memberships([customer_id]))[customer_id]

    async def memberships(self, customer_ids: Iterable[str]) -> dict[str, set[str]]:
        ids = sorted(set(customer_ids))
        found: dict[str, set[str]] = {cid: set() for cid in ids}
        for chunk in chunks(ids):
            result = await self.session.exec(
                select(MEMBERS.c.customer_id, MEMBERS.c.segment_id).where(
                    MEMBERS.c.customer_id.in_(chunk)
                )
            )
            for cid, segment_id in result.all():
                found[cid].add(segment_id)
        return found

    async def add_members(self, segment_id: str, customer_ids: Iterable[str], at: datetime) -> None:
        rows = [
            {"segment_id": segment_id, "customer_id": cid, "entered_at": at} for cid in customer_ids
        ]
        for start in range(0, len(rows), BULK):
            await self.session.exec(insert(MEMBERS), params=rows[start : start + BULK])

    async def remove_members(self, segment_id: str, customer_ids: Iterable[str]) -> None:
        ids = list(customer_ids)
        for start in range(0, len(ids), BULK):
            await self.session.exec(
                delete(MEMBERS).where(
                    MEMBERS.c.segment_id == segment_id,
                    MEMBERS.c.customer_id.in_(ids[start : start + BULK]),
                )
            )

    async def member_count(self, segment_id: str) -> int:
        result = await self.session.exec(
            select(func.count()).select_from(MEMBERS).where(MEMBERS.c.segment_id == segment_id)
        )
        return int(result.one())

    async def member_counts(self) -> dict[str, int]:
        result = await self.session.exec(
            select(MEMBERS.c.segment_id, func.count()).group_by(MEMBERS.c.segment_id)
        )
        return {segment_id: int(count) for segment_id, count in result.all()}

    async def member_page(
        self, segment_id: str, *, after: str | None, limit: int
    ) -> list[SegmentMember]:
        query = select(SegmentMember).where(SegmentMember.segment_id == segment_id)
        if after is not None:
            query = query.where(SegmentMember.customer_id > after)
        result = await self.session.exec(
            query.order_by(col(SegmentMember.customer_id)).limit(limit)
        )
        return list(result.all())

    async def delete_segment_members(self, segment_id: str) -> None:
        await self.session.exec(delete(MEMBERS).where(MEMBERS.c.segment_id == segment_id))

    async def members_of_customer(self, customer_id: str) -> list[SegmentMember]:
        return await rows_of(self.session, SegmentMember, customer_id)

    async def forget_memberships(self, customer_id: str) -> None:
        await delete_rows(self.session, SegmentMember, customer_id)
