"""Every query of the tickets domain: tickets, comments, links, SLA policies and breaches.

`TicketStore` is what the tickets use cases ask of it; `SqlTicketStore` answers on the
transaction's session (with the set-based reads the mentions' projection uses besides),
and `rapport_support.testing` has the in-memory fake."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, delete, exists, func, or_, update
from sqlalchemy import select as core_select
from sqlmodel import col, select

from rapport_events import bulk
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.unit_of_work import SqlStore
from rapport_support.shared import aware
from rapport_support.tickets.models import (
    OPEN_STATUSES,
    SupportSlaBreach,
    SupportSlaPolicy,
    SupportTicket,
    SupportTicketComment,
    SupportTicketLink,
)


@dataclass(frozen=True)
class TicketFilter:
    customer_id: str | None = None
    statuses: Sequence[str] = ()
    product_model_key: str | None = None
    priority: str | None = None
    category: str | None = None
    assignee: str | None = None
    unassigned: bool = False
    channel: str | None = None
    text: str | None = None
    breached: bool | None = None


class TicketStore(Protocol):
    def add(
        self,
        row: SupportTicket
        | SupportTicketComment
        | SupportTicketLink
        | SupportSlaBreach
        | SupportSlaPolicy,
    ) -> None: ...

    async def get_ticket(self, ticket_id: str) -> SupportTicket | None: ...

    async def list_tickets(
        self, where: TicketFilter, limit: int, cursor: str | None
    ) -> tuple[list[SupportTicket], str | None]:
        """Newest first; the second value is the cursor of the next page (None on the last)."""
        ...

    async def queue_of(self, assignee: str) -> list[SupportTicket]:
        """The assignee's open tickets."""
        ...

    async def comments_of(self, ticket_id: str) -> list[SupportTicketComment]:
        """The ticket's comments, oldest first."""
        ...

    async def move_comments(self, from_ticket: str, to_ticket: str) -> None: ...

    async def get_link(self, first: str, second: str) -> SupportTicketLink | None: ...

    async def links_of(self, ticket_id: str) -> list[SupportTicketLink]:
        """The ticket's links either way, oldest first."""
        ...

    async def breaches_for(self, ticket_ids: Iterable[str]) -> dict[str, list[SupportSlaBreach]]:
        """Each ticket's breaches, oldest first (an empty list for a ticket without)."""
        ...

    async def get_breach(self, ticket_id: str, target: str) -> SupportSlaBreach | None: ...

    async def overdue_tickets(self, now: datetime, limit: int) -> list[tuple[SupportTicket, str]]:
        """Open tickets past a due time with no breach recorded yet, with the missed target."""
        ...

    async def similarity_candidates(
        self, product_model_key: str | None, exclude: str | None, limit: int
    ) -> list[SupportTicket]:
        """The newest tickets (of the model, when known) other than `exclude` and its duplicates."""
        ...

    async def tickets_for_model(self, product_model_key: str, limit: int) -> list[SupportTicket]:
        """The model's newest tickets, for its known issues."""
        ...

    async def get_policy(self, priority: str) -> SupportSlaPolicy | None: ...

    async def policies(self) -> list[SupportSlaPolicy]: ...

    # What the merge, the erasure and the export ask.

    async def tickets_of(self, customer_id: str) -> list[SupportTicket]:
        """The customer's tickets, newest first."""
        ...

    async def comments_for(self, ticket_ids: Iterable[str]) -> list[SupportTicketComment]: ...

    async def links_for(self, ticket_ids: Iterable[str]) -> list[SupportTicketLink]:
        """The links from or to one of the tickets."""
        ...

    async def move_tickets(self, from_id: str, to_id: str) -> None:
        """The tickets of `from_id` become `to_id`'s."""
        ...

    async def forget_tickets_of(self, customer_id: str) -> None:
        """Delete the customer's tickets with their comments, links and breaches; another
        customer's ticket marked a duplicate of one of them keeps no pointer to it."""
        ...


# Set-based reads and writes for runs of events: the shared kit.
_table = bulk.table_of
_execute = bulk.execute
chunks = bulk.chunks


class SqlTicketStore(SqlStore):
    async def get_ticket(self, ticket_id: str) -> SupportTicket | None:
        return await self.session.get(SupportTicket, ticket_id)

    async def tickets_of(self, customer_id: str) -> list[SupportTicket]:
        result = await self.session.exec(
            select(SupportTicket)
            .where(SupportTicket.customer_id == customer_id)
            .order_by(col(SupportTicket.created_at).desc(), col(SupportTicket.id).desc())
        )
        return list(result.all())

    async def list_tickets(
        self, where: TicketFilter, limit: int, cursor: str | None
    ) -> tuple[list[SupportTicket], str | None]:
        """Newest first; the second value is the cursor of the next page (None on the last)."""
        query = select(SupportTicket)
        if where.customer_id is not None:
            query = query.where(SupportTicket.customer_id == where.customer_id)
        if where.statuses:
            query = query.where(col(SupportTicket.status).in_(where.statuses))
        if where.product_model_key is not None:
            query = query.where(SupportTicket.product_model_key == where.product_model_key)
        if where.priority is not None:
            query = query.where(SupportTicket.priority == where.priority)
        if where.category is not None:
            query = query.where(func.lower(SupportTicket.category) == where.category.lower())
        if where.assignee is not None:
            query = query.where(SupportTicket.assignee == where.assignee)
        if where.unassigned:
            query = query.where(col(SupportTicket.assignee).is_(None))
        if where.channel is not None:
            query = query.where(SupportTicket.channel == where.channel)
        if where.text:
            needle = where.text.lower()
            query = query.where(
                or_(
                    func.lower(SupportTicket.subject).contains(needle, autoescape=True),
                    func.lower(SupportTicket.description).contains(needle, autoescape=True),
                )
            )
        if where.breached is not None:
            has_breach = exists().where(col(SupportSlaBreach.ticket_id) == col(SupportTicket.id))
            query = query.where(has_breach if where.breached else ~has_breach)
        if cursor is not None:
            at, ticket_id = decode_cursor(cursor, datetime, str)
            query = query.where(
                or_(
                    col(SupportTicket.created_at) < at,
                    and_(col(SupportTicket.created_at) == at, col(SupportTicket.id) < ticket_id),
                )
            )
        query = query.order_by(col(SupportTicket.created_at).desc(), col(SupportTicket.id).desc())
        rows = list((await self.session.exec(query.limit(limit + 1))).all())
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_cursor(last.created_at, last.id)

    async def queue_of(self, assignee: str) -> list[SupportTicket]:
        result = await self.session.exec(
            select(SupportTicket).where(
                SupportTicket.assignee == assignee, col(SupportTicket.status).in_(OPEN_STATUSES)
            )
        )
        return list(result.all())

    async def comments_of(self, ticket_id: str) -> list[SupportTicketComment]:
        result = await self.session.exec(
            select(SupportTicketComment)
            .where(SupportTicketComment.ticket_id == ticket_id)
            .order_by(col(SupportTicketComment.created_at), col(SupportTicketComment.id))
        )
        return list(result.all())

    async def move_comments(self, from_ticket: str, to_ticket: str) -> None:
        await self.session.exec(
            update(SupportTicketComment)
            .where(col(SupportTicketComment.ticket_id) == from_ticket)
            .values(ticket_id=to_ticket)
        )

    async def comments_for(self, ticket_ids: Iterable[str]) -> list[SupportTicketComment]:
        result = await self.session.exec(
            select(SupportTicketComment).where(
                col(SupportTicketComment.ticket_id).in_(list(ticket_ids))
            )
        )
        return list(result.all())

    async def get_link(self, first: str, second: str) -> SupportTicketLink | None:
        return await self.session.get(SupportTicketLink, (first, second))

    async def links_of(self, ticket_id: str) -> list[SupportTicketLink]:
        result = await self.session.exec(
            select(SupportTicketLink)
            .where(
                or_(
                    col(SupportTicketLink.ticket_id) == ticket_id,
                    col(SupportTicketLink.linked_ticket_id) == ticket_id,
                )
            )
            .order_by(col(SupportTicketLink.created_at))
        )
        return list(result.all())

    async def links_for(self, ticket_ids: Iterable[str]) -> list[SupportTicketLink]:
        ids = list(ticket_ids)
        result = await self.session.exec(
            select(SupportTicketLink).where(
                or_(
                    col(SupportTicketLink.ticket_id).in_(ids),
                    col(SupportTicketLink.linked_ticket_id).in_(ids),
                )
            )
        )
        return list(result.all())

    async def move_tickets(self, from_id: str, to_id: str) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            update(SupportTicket)
            .where(col(SupportTicket.customer_id) == from_id)
            .values(customer_id=to_id)
        )

    async def forget_tickets_of(self, customer_id: str) -> None:
        tickets = select(SupportTicket.id).where(SupportTicket.customer_id == customer_id)
        linked = or_(
            col(SupportTicketLink.ticket_id).in_(tickets),
            col(SupportTicketLink.linked_ticket_id).in_(tickets),
        )
        for statement in (
            delete(SupportTicketComment).where(col(SupportTicketComment.ticket_id).in_(tickets)),
            delete(SupportTicketLink).where(linked),
            delete(SupportSlaBreach).where(col(SupportSlaBreach.ticket_id).in_(tickets)),
            # Another customer's ticket merged into one of these keeps only "duplicate of <id>".
            update(SupportTicket)
            .where(col(SupportTicket.duplicate_of).in_(tickets))
            .values(duplicate_of=None),
            delete(SupportTicket).where(col(SupportTicket.customer_id) == customer_id),
        ):
            await self.session.exec(statement)  # type: ignore[call-overload]

    async def breaches_for(self, ticket_ids: Iterable[str]) -> dict[str, list[SupportSlaBreach]]:
        ids = list(ticket_ids)
        found: dict[str, list[SupportSlaBreach]] = {ticket_id: [] for ticket_id in ids}
        if not ids:
            return found
        result = await self.session.exec(
            select(SupportSlaBreach)
            .where(col(SupportSlaBreach.ticket_id).in_(ids))
            .order_by(col(SupportSlaBreach.breached_at))
        )
        for breach in result.all():
            found[breach.ticket_id].append(breach)
        return found

    async def get_breach(self, ticket_id: str, target: str) -> SupportSlaBreach | None:
        result = await self.session.exec(
            select(SupportSlaBreach).where(
                SupportSlaBreach.ticket_id == ticket_id, SupportSlaBreach.target == target
            )
        )
        return result.first()

    async def overdue_tickets(self, now: datetime, limit: int) -> list[tuple[SupportTicket, str]]:
        """Open tickets past a due time with no breach recorded yet, with the missed target."""
        found: list[tuple[SupportTicket, str]] = []
        targets: list[tuple[str, Any, Any]] = [
            (
                "first_response",
                SupportTicket.first_response_due_at,
                SupportTicket.first_responded_at,
            ),
            ("resolution", SupportTicket.resolution_due_at, SupportTicket.resolved_at),
        ]
        for target, due, done in targets:
            recorded = exists().where(
                col(SupportSlaBreach.ticket_id) == col(SupportTicket.id),
                col(SupportSlaBreach.target) == target,
            )
            result = await self.session.exec(
                select(SupportTicket)
                .where(
                    col(SupportTicket.status).in_(OPEN_STATUSES),
                    col(due) < now,
                    col(done).is_(None),
                    ~recorded,
                )
                .order_by(col(due), col(SupportTicket.id))
                .limit(limit)
                # Another monitor's tickets are skipped, not waited for: replicas share the pass.
                .with_for_update(of=SupportTicket, skip_locked=True)
            )
            found.extend((ticket, target) for ticket in result.all())
        return found

    async def tickets_for_model(self, product_model_key: str, limit: int) -> list[SupportTicket]:
        result = await self.session.exec(
            select(SupportTicket)
            .where(SupportTicket.product_model_key == product_model_key)
            .order_by(col(SupportTicket.created_at).desc())
            .limit(limit)
        )
        return list(result.all())

    async def similarity_candidates(
        self, product_model_key: str | None, exclude: str | None, limit: int
    ) -> list[SupportTicket]:
        """The newest tickets (of the model, when known) other than `exclude` and its duplicates."""
        query = select(SupportTicket).where(col(SupportTicket.duplicate_of).is_(None))
        if product_model_key is not None:
            query = query.where(SupportTicket.product_model_key == product_model_key)
        if exclude is not None:
            query = query.where(SupportTicket.id != exclude)
        query = query.order_by(col(SupportTicket.created_at).desc()).limit(limit)
        return list((await self.session.exec(query)).all())

    async def get_policy(self, priority: str) -> SupportSlaPolicy | None:
        return await self.session.get(SupportSlaPolicy, priority)

    async def policies(self) -> list[SupportSlaPolicy]:
        return list((await self.session.exec(select(SupportSlaPolicy))).all())

    async def tickets_filed_under(self, subject_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The tickets of these subject ids, oldest first."""
        table = _table(SupportTicket)
        found: list[dict[str, Any]] = []
        for part in chunks(sorted(set(subject_ids))):
            result = await _execute(
                self.session,
                core_select(
                    table.c.id, table.c.customer_id, table.c.status, table.c.created_at
                ).where(table.c.customer_id.in_(part)),
            )
            found.extend(dict(row) for row in result.mappings())
        return sorted(found, key=lambda row: (aware(row["created_at"]), row["id"]))
