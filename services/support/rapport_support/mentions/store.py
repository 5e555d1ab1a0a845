"""Every query of the mentions domain: mentions, replies and their delivery attempts.

The use cases ask them of a `MentionStore` (`SqlMentionStore` here, a fake in
`rapport_support.testing`), and so do the merge, the erasure and the export. The
set-based functions at the end are the projection's, on the consumer's session.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, delete, or_, tuple_, update
from sqlalchemy import select as core_select
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import bulk
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.unit_of_work import SqlStore
from rapport_support.mentions.models import SupportMention, SupportMentionReply, SupportReplyAttempt


@dataclass(frozen=True)
class MentionFilter:
    platform: str | None = None
    sentiment: str | None = None
    status: str | None = None
    kind: str | None = None
    customer_id: str | None = None
    linked: bool | None = None


class MentionStore(Protocol):
    def add(self, row: SupportMention | SupportMentionReply | SupportReplyAttempt) -> None: ...

    async def get_mention(self, mention_id: str) -> SupportMention | None: ...

    async def mention_by_external_id(
        self, platform: str, external_id: str
    ) -> SupportMention | None: ...

    async def list_mentions(
        self, where: MentionFilter, limit: int, cursor: str | None
    ) -> tuple[list[SupportMention], str | None]:
        """Newest first; the second value is the cursor of the next page (None on the last)."""
        ...

    async def get_reply(self, reply_id: str) -> SupportMentionReply | None: ...

    async def replies_of(self, mention_id: str) -> list[SupportMentionReply]:
        """A mention's replies, oldest first."""
        ...

    async def attempts_for(self, reply_ids: Iterable[str]) -> list[SupportReplyAttempt]:
        """The replies' delivery attempts, by reply and in the order they were made."""
        ...

    async def claim_due_replies(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[SupportMentionReply]:
        """Take the next attempt of up to `limit` due replies, leased until `lease_until`."""
        ...

    # What the merge, the erasure and the export ask.

    async def mentions_of(self, customer_id: str) -> list[SupportMention]:
        """The customer's mentions, newest first."""
        ...

    async def replies_for(self, mention_ids: Iterable[str]) -> list[SupportMentionReply]: ...

    async def move_mentions(self, from_id: str, to_id: str) -> None:
        """The mentions of `from_id` become `to_id`'s, as customer and as subject."""
        ...

    async def forget_mentions_of(self, customer_id: str) -> None:
        """Delete the customer's mentions with their replies and delivery attempts."""
        ...


class SqlMentionStore(SqlStore):
    async def get_mention(self, mention_id: str) -> SupportMention | None:
        return await self.session.get(SupportMention, mention_id)

    async def mention_by_external_id(
        self, platform: str, external_id: str
    ) -> SupportMention | None:
        result = await self.session.exec(
            select(SupportMention).where(
                SupportMention.platform == platform, SupportMention.external_id == external_id
            )
        )
        return result.first()

    async def list_mentions(
        self, where: MentionFilter, limit: int, cursor: str | None
    ) -> tuple[list[SupportMention], str | None]:
        query = select(SupportMention)
        if where.platform is not None:
            query = query.where(SupportMention.platform == where.platform.lower())
        if where.sentiment is not None:
            query = query.where(SupportMention.sentiment == where.sentiment)
        if where.status is not None:
            query = query.where(SupportMention.status == where.status)
        if where.kind is not None:
            query = query.where(SupportMention.kind == where.kind)
        if where.customer_id is not None:
            query = query.where(SupportMention.customer_id == where.customer_id)
        if where.linked is not None:
            linked = col(SupportMention.customer_id)
            query = query.where(linked.is_not(None) if where.linked else linked.is_(None))
        if cursor is not None:
            at, mention_id = decode_cursor(cursor, datetime, str)
            query = query.where(
                or_(
                    col(SupportMention.received_at) < at,
                    and_(
                        col(SupportMention.received_at) == at, col(SupportMention.id) < mention_id
                    ),
                )
            )
        query = query.order_by(
            col(SupportMention.received_at).desc(), col(SupportMention.id).desc()
        )
        rows = list((await self.session.exec(query.limit(limit + 1))).all())
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_cursor(last.received_at, last.id)

    async def get_reply(self, reply_id: str) -> SupportMentionReply | None:
        return await self.session.get(SupportMentionReply, reply_id)

    async def replies_of(self, mention_id: str) -> list[SupportMentionReply]:
        result = await self.session.exec(
            select(SupportMentionReply)
            .where(SupportMentionReply.mention_id == mention_id)
            .order_by(col(SupportMentionReply.created_at), col(SupportMentionReply.id))
        )
        return list(result.all())

    async def attempts_for(self, reply_ids: Iterable[str]) -> list[SupportReplyAttempt]:
        result = await self.session.exec(
            select(SupportReplyAttempt)
            .where(col(SupportReplyAttempt.reply_id).in_(list(reply_ids)))
            .order_by(col(SupportReplyAttempt.reply_id), col(SupportReplyAttempt.attempt))
        )
        return list(result.all())

    async def claim_due_replies(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[SupportMentionReply]:
        # One statement: rows another dispatcher is claiming are skipped (SKIP LOCKED on
        # PostgreSQL; SQLite lets one writer in at a time), so each attempt is made once.
        due = (
            select(col(SupportMentionReply.id))
            .where(
                SupportMentionReply.status == "pending",
                col(SupportMentionReply.next_attempt_at) <= now,
            )
            .order_by(col(SupportMentionReply.next_attempt_at), col(SupportMentionReply.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.exec(
            update(SupportMentionReply)
            .where(col(SupportMentionReply.id).in_(due.scalar_subquery()))
            .values(attempts=col(SupportMentionReply.attempts) + 1, next_attempt_at=lease_until)
            .returning(col(SupportMentionReply.id))
        )
        claimed = list(result.scalars().all())  # type: ignore[attr-defined]
        if not claimed:
            return []
        rows = await self.session.exec(
            select(SupportMentionReply)
            .where(col(SupportMentionReply.id).in_(claimed))
            .order_by(col(SupportMentionReply.id))
            .execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def mentions_of(self, customer_id: str) -> list[SupportMention]:
        query = (
            select(SupportMention)
            .where(SupportMention.customer_id == customer_id)
            .order_by(col(SupportMention.received_at).desc(), col(SupportMention.id).desc())
        )
        return list((await self.session.exec(query)).all())

    async def replies_for(self, mention_ids: Iterable[str]) -> list[SupportMentionReply]:
        result = await self.session.exec(
            select(SupportMentionReply).where(
                col(SupportMentionReply.mention_id).in_(list(mention_ids))
            )
        )
        return list(result.all())

    async def move_mentions(self, from_id: str, to_id: str) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            update(SupportMention)
            .where(col(SupportMention.customer_id) == from_id)
            .values(customer_id=to_id, subject_id=to_id)
        )

    async def forget_mentions_of(self, customer_id: str) -> None:
        mentions = select(SupportMention.id).where(SupportMention.customer_id == customer_id)
        replies = select(SupportMentionReply.id).where(
            col(SupportMentionReply.mention_id).in_(mentions)
        )
        for statement in (
            delete(SupportReplyAttempt).where(col(SupportReplyAttempt.reply_id).in_(replies)),
            delete(SupportMentionReply).where(col(SupportMentionReply.mention_id).in_(mentions)),
            delete(SupportMention).where(col(SupportMention.customer_id) == customer_id),
        ):
            await self.session.exec(statement)  # type: ignore[call-overload]


# Set-based reads and writes for runs of events: the shared kit.
_table = bulk.table_of
_execute = bulk.execute
chunks = bulk.chunks


async def unlinked_mentions(
    session: AsyncSession, keys: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The mentions not yet linked to a customer whose (platform, handle key) is in `keys`."""
    table = _table(SupportMention)
    key = tuple_(table.c.platform, table.c.handle_key)
    found: list[dict[str, Any]] = []
    for part in chunks(sorted(set(keys))):
        result = await _execute(
            session,
            core_select(table.c.id, table.c.platform, table.c.handle_key, table.c.subject_id).where(
                key.in_(part), table.c.customer_id.is_(None)
            ),
        )
        found.extend(dict(row) for row in result.mappings())
    return found


async def relink(
    session: AsyncSession, model: type[SQLModel], ids: dict[str, str], *, subject: bool = False
) -> None:
    """Give each row of `model` (by id) to a customer: one statement per customer."""
    table = _table(model)
    by_customer: dict[str, list[str]] = {}
    for row_id, customer_id in ids.items():
        by_customer.setdefault(customer_id, []).append(row_id)
    for customer_id, row_ids in by_customer.items():
        values = {"customer_id": customer_id, **({"subject_id": customer_id} if subject else {})}
        for part in chunks(sorted(row_ids)):
            await _execute(session, table.update().where(table.c.id.in_(part)).values(**values))
