"""Every query support makes."""

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, or_, tuple_, update
from sqlalchemy import select as core_select
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import bulk
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_support.models import (
    OPEN_STATUSES,
    SupportConsent,
    SupportCustomer,
    SupportErasedCustomer,
    SupportHandle,
    SupportMention,
    SupportMentionReply,
    SupportMergedCustomer,
    SupportProduct,
    SupportReplyAttempt,
    SupportSlaBreach,
    SupportSlaPolicy,
    SupportTicket,
    SupportTicketComment,
    SupportTicketLink,
    aware,
)


def add(session: AsyncSession, row: SQLModel) -> None:
    session.add(row)


# --- customers ------------------------------------------------------------------------------


async def get_customer(session: AsyncSession, customer_id: str) -> SupportCustomer | None:
    return await session.get(SupportCustomer, customer_id)


def add_customer(session: AsyncSession, customer: SupportCustomer) -> None:
    session.add(customer)


@dataclass(frozen=True)
class ContextRows:
    """What the support context shows of one customer, as plain rows (no ORM objects)."""

    customer: Any | None
    products: Sequence[Any]
    tickets: Sequence[Any]
    handles: Sequence[Any]
    consents: Sequence[Any]
    mentions: Sequence[Any]


@functools.cache
def _context_queries() -> dict[str, Any]:
    """The support context's selects, built once (building one costs more than running it)."""
    customer_id: Any = bindparam("customer_id")

    def rows_of(model: type[SQLModel], *order: str) -> Any:
        table = _table(model)
        columns = [
            table.c[name[1:]].desc() if name.startswith("-") else table.c[name] for name in order
        ]
        return core_select(table).where(table.c.customer_id == customer_id).order_by(*columns)

    return {
        "customer": rows_of(SupportCustomer),
        "handles": rows_of(SupportHandle, "platform"),
        "consents": rows_of(SupportConsent, "purpose", "scope"),
        "products": rows_of(SupportProduct, "-purchased_at", "line_no"),
        "tickets": rows_of(SupportTicket, "-created_at", "-id"),
        "mentions": rows_of(SupportMention, "-received_at", "-id").limit(bindparam("limit")),
    }


async def context_rows(session: AsyncSession, customer_id: str, mentions: int) -> ContextRows:
    """The customer's row and what hangs off it, newest first: Core selects on one connection.

    A read on the hot path of every call a rep takes: rows, not ORM objects, which cost
    more to build than the queries take.
    """
    await session.flush()  # rows the caller added in this transaction are seen
    connection = await session.connection()
    queries = _context_queries()
    values = {"customer_id": customer_id, "limit": mentions}

    async def rows(name: str) -> Sequence[Any]:
        return (await connection.execute(queries[name], values)).all()

    customers = await rows("customer")
    found = customers[0] if customers else None
    return ContextRows(
        customer=found,
        products=await rows("products"),
        tickets=await rows("tickets"),
        handles=await rows("handles") if found is not None else [],
        consents=await rows("consents") if found is not None else [],
        mentions=await rows("mentions"),
    )


async def is_erased(session: AsyncSession, customer_id: str) -> bool:
    return await session.get(SupportErasedCustomer, customer_id) is not None


async def survivor_of(session: AsyncSession, merged_id: str) -> str | None:
    alias = await session.get(SupportMergedCustomer, merged_id)
    return alias.customer_id if alias is not None else None


# Merges chain; bounded so a cycle in bad data cannot loop forever.
MERGE_CHAIN_LIMIT = 16


async def current_id(session: AsyncSession, customer_id: str) -> str:
    """The id the customer's data lives under: the survivor's when it was merged away."""
    for _ in range(MERGE_CHAIN_LIMIT):
        survivor = await survivor_of(session, customer_id)
        if survivor is None or survivor == customer_id:
            return customer_id
        customer_id = survivor
    return customer_id


# --- set-based reads and writes for runs of events: the shared kit -------------------
CHUNK = bulk.CHUNK
_table = bulk.table_of
_execute = bulk.execute
chunks = bulk.chunks
rows_where_in = bulk.rows_where
rows_where_pairs = bulk.rows_where
upsert = bulk.upsert
delete_pairs = bulk.delete_where


async def survivors_of(session: AsyncSession, merged_ids: Iterable[str]) -> dict[str, str]:
    """merged id -> the id it was merged into, for those of `merged_ids` merged away."""
    rows = await rows_where_in(session, SupportMergedCustomer, "merged_id", merged_ids)
    return {row["merged_id"]: row["customer_id"] for row in rows}


async def erased_among(session: AsyncSession, customer_ids: Iterable[str]) -> set[str]:
    rows = await rows_where_in(session, SupportErasedCustomer, "customer_id", customer_ids)
    return {row["customer_id"] for row in rows}


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


async def tickets_filed_under(
    session: AsyncSession, subject_ids: Iterable[str]
) -> list[dict[str, Any]]:
    """The tickets of these subject ids, oldest first."""
    table = _table(SupportTicket)
    found: list[dict[str, Any]] = []
    for part in chunks(sorted(set(subject_ids))):
        result = await _execute(
            session,
            core_select(table.c.id, table.c.customer_id, table.c.status, table.c.created_at).where(
                table.c.customer_id.in_(part)
            ),
        )
        found.extend(dict(row) for row in result.mappings())
    return sorted(found, key=lambda row: (aware(row["created_at"]), row["id"]))


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


async def get_consent(
    session: AsyncSession, customer_id: str, purpose: str, scope: str
) -> SupportConsent | None:
    result = await session.exec(
        select(SupportConsent).where(
            SupportConsent.customer_id == customer_id,
            SupportConsent.purpose == purpose,
            SupportConsent.scope == scope,
        )
    )
    return result.first()


async def consents_of(session: AsyncSession, customer_id: str) -> list[SupportConsent]:
    result = await session.exec(
        select(SupportConsent)
        .where(SupportConsent.customer_id == customer_id)
        .order_by(col(SupportConsent.purpose), col(SupportConsent.scope))
    )
    return list(result.all())


async def handles_of(session: AsyncSession, customer_id: str) -> list[SupportHandle]:
    result = await session.exec(
        select(SupportHandle)
        .where(SupportHandle.customer_id == customer_id)
        .order_by(col(SupportHandle.platform))
    )
    return list(result.all())


async def get_handle(session: AsyncSession, platform: str, key: str) -> SupportHandle | None:
    return await session.get(SupportHandle, (platform, key))


async def delete_handle(session: AsyncSession, handle: SupportHandle) -> None:
    await session.delete(handle)


async def link_mentions(
    session: AsyncSession, platform: str, key: str, customer_id: str
) -> list[tuple[SupportTicket, str]]:
    """Give the handle's unlinked mentions and their tickets to the customer.

    Returns each moved ticket with the subject id it was filed under before.
    """
    result = await session.exec(
        select(SupportMention).where(
            SupportMention.platform == platform,
            SupportMention.handle_key == key,
            col(SupportMention.customer_id).is_(None),
        )
    )
    subjects = set()
    for mention in result.all():
        subjects.add(mention.subject_id)
        mention.customer_id = customer_id
        mention.subject_id = customer_id
        session.add(mention)
    if not subjects:
        return []
    tickets = await session.exec(
        select(SupportTicket)
        .where(col(SupportTicket.customer_id).in_(subjects))
        .order_by(col(SupportTicket.created_at), col(SupportTicket.id))
    )
    moved = []
    for ticket in tickets.all():
        moved.append((ticket, ticket.customer_id))
        ticket.customer_id = customer_id
        session.add(ticket)
    return moved


async def products_of(session: AsyncSession, customer_id: str) -> list[SupportProduct]:
    result = await session.exec(
        select(SupportProduct)
        .where(SupportProduct.customer_id == customer_id)
        .order_by(col(SupportProduct.purchased_at).desc(), col(SupportProduct.line_no))
    )
    return list(result.all())


async def order_recorded(session: AsyncSession, customer_id: str, order_id: str) -> bool:
    result = await session.exec(
        select(SupportProduct.id)
        .where(SupportProduct.customer_id == customer_id, SupportProduct.order_id == order_id)
        .limit(1)
    )
    return result.first() is not None


async def recorded_orders(
    session: AsyncSession, orders: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Which of these (customer id, order id) pairs already have products."""
    rows = await rows_where_pairs(session, SupportProduct, ("customer_id", "order_id"), orders)
    return [{"customer_id": row["customer_id"], "order_id": row["order_id"]} for row in rows]


async def product_by_serial(
    session: AsyncSession, customer_id: str, serial_number: str
) -> SupportProduct | None:
    result = await session.exec(
        select(SupportProduct).where(
            SupportProduct.customer_id == customer_id,
            func.lower(SupportProduct.serial_number) == serial_number.lower(),
        )
    )
    return result.first()


async def tickets_of(session: AsyncSession, customer_id: str) -> list[SupportTicket]:
    result = await session.exec(
        select(SupportTicket)
        .where(SupportTicket.customer_id == customer_id)
        .order_by(col(SupportTicket.created_at).desc(), col(SupportTicket.id).desc())
    )
    return list(result.all())


async def mentions_of(
    session: AsyncSession, customer_id: str, limit: int | None = None
) -> list[SupportMention]:
    query = (
        select(SupportMention)
        .where(SupportMention.customer_id == customer_id)
        .order_by(col(SupportMention.received_at).desc(), col(SupportMention.id).desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return list((await session.exec(query)).all())


async def move_customer_rows(session: AsyncSession, from_id: str, to_id: str) -> None:
    """Re-key everything held under `from_id` to `to_id` (a merge)."""
    for table in (SupportProduct, SupportTicket, SupportHandle):
        await session.exec(
            update(table).where(col(table.customer_id) == from_id).values(customer_id=to_id)
        )
    await session.exec(
        update(SupportMention)
        .where(col(SupportMention.customer_id) == from_id)
        .values(customer_id=to_id, subject_id=to_id)
    )
    await session.exec(
        update(SupportMergedCustomer)
        .where(col(SupportMergedCustomer.customer_id) == from_id)
        .values(customer_id=to_id)
    )
    await session.exec(delete(SupportConsent).where(col(SupportConsent.customer_id) == from_id))


async def aliases_of(session: AsyncSession, customer_id: str) -> list[SupportMergedCustomer]:
    result = await session.exec(
        select(SupportMergedCustomer).where(SupportMergedCustomer.customer_id == customer_id)
    )
    return list(result.all())


async def delete_customer_rows(session: AsyncSession, customer_id: str) -> None:
    """Delete every row about the customer: profile, consents, products, tickets, mentions."""
    tickets = select(SupportTicket.id).where(SupportTicket.customer_id == customer_id)
    mentions = select(SupportMention.id).where(SupportMention.customer_id == customer_id)
    replies = select(SupportMentionReply.id).where(
        col(SupportMentionReply.mention_id).in_(mentions)
    )
    await session.exec(
        delete(SupportReplyAttempt).where(col(SupportReplyAttempt.reply_id).in_(replies))
    )
    await session.exec(
        delete(SupportMentionReply).where(col(SupportMentionReply.mention_id).in_(mentions))
    )
    await session.exec(delete(SupportMention).where(col(SupportMention.customer_id) == customer_id))
    await session.exec(
        delete(SupportTicketComment).where(col(SupportTicketComment.ticket_id).in_(tickets))
    )
    await session.exec(
        delete(SupportTicketLink).where(
            or_(
                col(SupportTicketLink.ticket_id).in_(tickets),
                col(SupportTicketLink.linked_ticket_id).in_(tickets),
            )
        )
    )
    await session.exec(delete(SupportSlaBreach).where(col(SupportSlaBreach.ticket_id).in_(tickets)))
    # Another customer's ticket merged into one of these keeps only "duplicate of <id>".
    await session.exec(
        update(SupportTicket)
        .where(col(SupportTicket.duplicate_of).in_(tickets))
        .values(duplicate_of=None)
    )
    for table in (SupportTicket, SupportProduct, SupportHandle, SupportConsent):
        await session.exec(delete(table).where(col(table.customer_id) == customer_id))
    await session.exec(
        delete(SupportMergedCustomer).where(col(SupportMergedCustomer.customer_id) == customer_id)
    )
    await session.exec(
        delete(SupportCustomer).where(col(SupportCustomer.customer_id) == customer_id)
    )


# --- tickets --------------------------------------------------------------------------------


async def get_ticket(session: AsyncSession, ticket_id: str) -> SupportTicket | None:
    return await session.get(SupportTicket, ticket_id)


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


async def list_tickets(
    session: AsyncSession, where: TicketFilter, limit: int, cursor: str | None
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
    rows = list((await session.exec(query.limit(limit + 1))).all())
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.created_at, last.id)


async def queue_of(session: AsyncSession, assignee: str) -> list[SupportTicket]:
    result = await session.exec(
        select(SupportTicket).where(
            SupportTicket.assignee == assignee, col(SupportTicket.status).in_(OPEN_STATUSES)
        )
    )
    return list(result.all())


async def comments_of(session: AsyncSession, ticket_id: str) -> list[SupportTicketComment]:
    result = await session.exec(
        select(SupportTicketComment)
        .where(SupportTicketComment.ticket_id == ticket_id)
        .order_by(col(SupportTicketComment.created_at), col(SupportTicketComment.id))
    )
    return list(result.all())


async def move_comments(session: AsyncSession, from_ticket: str, to_ticket: str) -> None:
    await session.exec(
        update(SupportTicketComment)
        .where(col(SupportTicketComment.ticket_id) == from_ticket)
        .values(ticket_id=to_ticket)
    )


async def comments_for(
    session: AsyncSession, ticket_ids: Iterable[str]
) -> list[SupportTicketComment]:
    result = await session.exec(
        select(SupportTicketComment).where(
            col(SupportTicketComment.ticket_id).in_(list(ticket_ids))
        )
    )
    return list(result.all())


async def get_link(session: AsyncSession, first: str, second: str) -> SupportTicketLink | None:
    return await session.get(SupportTicketLink, (first, second))


async def links_of(session: AsyncSession, ticket_id: str) -> list[SupportTicketLink]:
    result = await session.exec(
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


async def links_for(session: AsyncSession, ticket_ids: Iterable[str]) -> list[SupportTicketLink]:
    ids = list(ticket_ids)
    result = await session.exec(
        select(SupportTicketLink).where(
            or_(
                col(SupportTicketLink.ticket_id).in_(ids),
                col(SupportTicketLink.linked_ticket_id).in_(ids),
            )
        )
    )
    return list(result.all())


async def breaches_for(
    session: AsyncSession, ticket_ids: Iterable[str]
) -> dict[str, list[SupportSlaBreach]]:
    ids = list(ticket_ids)
    found: dict[str, list[SupportSlaBreach]] = {ticket_id: [] for ticket_id in ids}
    if not ids:
        return found
    result = await session.exec(
        select(SupportSlaBreach)
        .where(col(SupportSlaBreach.ticket_id).in_(ids))
        .order_by(col(SupportSlaBreach.breached_at))
    )
    for breach in result.all():
        found[breach.ticket_id].append(breach)
    return found


async def get_breach(session: AsyncSession, ticket_id: str, target: str) -> SupportSlaBreach | None:
    result = await session.exec(
        select(SupportSlaBreach).where(
            SupportSlaBreach.ticket_id == ticket_id, SupportSlaBreach.target == target
        )
    )
    return result.first()


async def overdue_tickets(
    session: AsyncSession, now: datetime, limit: int
) -> list[tuple[SupportTicket, str]]:
    """Open tickets past a due time with no breach recorded yet, with the missed target."""
    found: list[tuple[SupportTicket, str]] = []
    targets: list[tuple[str, Any, Any]] = [
        ("first_response", SupportTicket.first_response_due_at, SupportTicket.first_responded_at),
        ("resolution", SupportTicket.resolution_due_at, SupportTicket.resolved_at),
    ]
    for target, due, done in targets:
        recorded = exists().where(
            col(SupportSlaBreach.ticket_id) == col(SupportTicket.id),
            col(SupportSlaBreach.target) == target,
        )
        result = await session.exec(
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


async def tickets_for_model(
    session: AsyncSession, product_model_key: str, limit: int
) -> list[SupportTicket]:
    result = await session.exec(
        select(SupportTicket)
        .where(SupportTicket.product_model_key == product_model_key)
        .order_by(col(SupportTicket.created_at).desc())
        .limit(limit)
    )
    return list(result.all())


async def similarity_candidates(
    session: AsyncSession, product_model_key: str | None, exclude: str | None, limit: int
) -> list[SupportTicket]:
    """The newest tickets (of the model, when known) other than `exclude` and its duplicates."""
    query = select(SupportTicket).where(col(SupportTicket.duplicate_of).is_(None))
    if product_model_key is not None:
        query = query.where(SupportTicket.product_model_key == product_model_key)
    if exclude is not None:
        query = query.where(SupportTicket.id != exclude)
    query = query.order_by(col(SupportTicket.created_at).desc()).limit(limit)
    return list((await session.exec(query)).all())


async def get_policy(session: AsyncSession, priority: str) -> SupportSlaPolicy | None:
    return await session.get(SupportSlaPolicy, priority)


async def policies(session: AsyncSession) -> list[SupportSlaPolicy]:
    return list((await session.exec(select(SupportSlaPolicy))).all())


# --- mentions and replies ----------------------------------------------------------------------


async def get_mention(session: AsyncSession, mention_id: str) -> SupportMention | None:
    return await session.get(SupportMention, mention_id)


async def mention_by_external_id(
    session: AsyncSession, platform: str, external_id: str
) -> SupportMention | None:
    result = await session.exec(
        select(SupportMention).where(
            SupportMention.platform == platform, SupportMention.external_id == external_id
        )
    )
    return result.first()


@dataclass(frozen=True)
class MentionFilter:
    platform: str | None = None
    sentiment: str | None = None
    status: str | None = None
    kind: str | None = None
    customer_id: str | None = None
    linked: bool | None = None


async def list_mentions(
    session: AsyncSession, where: MentionFilter, limit: int, cursor: str | None
) -> tuple[list[SupportMention], str | None]:
    """Newest first; the second value is the cursor of the next page (None on the last)."""
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
                and_(col(SupportMention.received_at) == at, col(SupportMention.id) < mention_id),
            )
        )
    query = query.order_by(col(SupportMention.received_at).desc(), col(SupportMention.id).desc())
    rows = list((await session.exec(query.limit(limit + 1))).all())
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.received_at, last.id)


async def get_reply(session: AsyncSession, reply_id: str) -> SupportMentionReply | None:
    return await session.get(SupportMentionReply, reply_id)


async def replies_of(session: AsyncSession, mention_id: str) -> list[SupportMentionReply]:
    result = await session.exec(
        select(SupportMentionReply)
        .where(SupportMentionReply.mention_id == mention_id)
        .order_by(col(SupportMentionReply.created_at), col(SupportMentionReply.id))
    )
    return list(result.all())


async def replies_for(
    session: AsyncSession, mention_ids: Iterable[str]
) -> list[SupportMentionReply]:
    result = await session.exec(
        select(SupportMentionReply).where(
            col(SupportMentionReply.mention_id).in_(list(mention_ids))
        )
    )
    return list(result.all())


async def attempts_for(
    session: AsyncSession, reply_ids: Iterable[str]
) -> list[SupportReplyAttempt]:
    result = await session.exec(
        select(SupportReplyAttempt)
        .where(col(SupportReplyAttempt.reply_id).in_(list(reply_ids)))
        .order_by(col(SupportReplyAttempt.reply_id), col(SupportReplyAttempt.attempt))
    )
    return list(result.all())


async def claim_due_replies(
    session: AsyncSession, now: datetime, limit: int, lease_until: datetime
) -> list[SupportMentionReply]:
    """Take the next attempt of up to `limit` due replies, leased until `lease_until`.

    One statement: rows another dispatcher is claiming are skipped (SKIP LOCKED on
    PostgreSQL; SQLite lets one writer in at a time), so each attempt is made once.
    """
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
    result = await session.exec(
        update(SupportMentionReply)
        .where(col(SupportMentionReply.id).in_(due.scalar_subquery()))
        .values(attempts=col(SupportMentionReply.attempts) + 1, next_attempt_at=lease_until)
        .returning(col(SupportMentionReply.id))
    )
    claimed = list(result.scalars().all())  # type: ignore[attr-defined]
    if not claimed:
        return []
    rows = await session.exec(
        select(SupportMentionReply)
        .where(col(SupportMentionReply.id).in_(claimed))
        .order_by(col(SupportMentionReply.id))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def export_rows(session: AsyncSession, customer_id: str) -> dict[str, list[SQLModel]]:
    """Every row support holds about the customer, by table."""
    tickets = await tickets_of(session, customer_id)
    ticket_ids = [ticket.id for ticket in tickets]
    mentions = await mentions_of(session, customer_id)
    replies = await replies_for(session, [mention.id for mention in mentions])
    customer = await get_customer(session, customer_id)
    breaches = await breaches_for(session, ticket_ids)
    return {
        "support_customers": [customer] if customer is not None else [],
        "support_consents": list(await consents_of(session, customer_id)),
        "support_handles": list(await handles_of(session, customer_id)),
        "support_merged_customers": list(await aliases_of(session, customer_id)),
        "support_products": list(await products_of(session, customer_id)),
        "support_tickets": list(tickets),
        "support_ticket_comments": list(await comments_for(session, ticket_ids)),
        "support_ticket_links": list(await links_for(session, ticket_ids)),
        "support_sla_breaches": [b for found in breaches.values() for b in found],
        "support_mentions": list(mentions),
        "support_mention_replies": list(replies),
        "support_reply_attempts": list(
            await attempts_for(session, [reply.id for reply in replies])
        ),
    }
