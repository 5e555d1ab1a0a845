"""In-memory fakes of what the customers, tickets, mentions and products use cases and the
merge, erasure and export (`rapport_support.lifecycle`) ask of support's stores, for unit
tests: the same queries as the SQL ones, answered with plain Python over rows kept by
primary key.

`FakeSupportUnitOfWork` puts them on one set of rows with a `FakeOutbox`; mypy checks it
is a `SupportUnitOfWork`, so a fake that lacks a query, or answers it with another
signature, fails the lint.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from rapport_events import customer_ids
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.testing.unit_of_work import FakeStore, FakeUnitOfWork
from rapport_support.customers.models import (
    ErasedCustomer,
    SupportConsent,
    SupportCustomer,
    SupportHandle,
    SupportMergedCustomer,
)
from rapport_support.customers.store import ContextRows
from rapport_support.mentions.models import (
    SupportMention,
    SupportMentionReply,
    SupportReplyAttempt,
)
from rapport_support.mentions.store import MentionFilter
from rapport_support.products.models import SupportProduct
from rapport_support.shared import aware
from rapport_support.tickets.models import (
    OPEN_STATUSES,
    SupportSlaBreach,
    SupportSlaPolicy,
    SupportTicket,
    SupportTicketComment,
    SupportTicketLink,
)
from rapport_support.tickets.store import TicketFilter

if TYPE_CHECKING:
    from rapport_support.unit_of_work import SupportUnitOfWork


class FakeTicketStore(FakeStore):
    async def get_ticket(self, ticket_id: str) -> SupportTicket | None:
        return self.rows.get(SupportTicket, ticket_id)

    def _matches(self, ticket: SupportTicket, where: TicketFilter) -> bool:
        needle = (where.text or "").lower()
        texts = (ticket.subject.lower(), (ticket.description or "").lower())
        checks = [
            where.customer_id is None or ticket.customer_id == where.customer_id,
            not where.statuses or ticket.status in where.statuses,
            where.product_model_key is None or ticket.product_model_key == where.product_model_key,
            where.priority is None or ticket.priority == where.priority,
            where.category is None or (ticket.category or "").lower() == where.category.lower(),
            where.assignee is None or ticket.assignee == where.assignee,
            not where.unassigned or ticket.assignee is None,
            where.channel is None or ticket.channel == where.channel,
            not needle or any(needle in text for text in texts),
            where.breached is None or where.breached == self._breached(ticket.id),
        ]
        return all(checks)

    def _breached(self, ticket_id: str) -> bool:
        return bool(self.rows.where(SupportSlaBreach, lambda b: b.ticket_id == ticket_id))

    async def list_tickets(
        self, where: TicketFilter, limit: int, cursor: str | None
    ) -> tuple[list[SupportTicket], str | None]:
        found = self.rows.where(SupportTicket, lambda ticket: self._matches(ticket, where))
        found.sort(key=lambda ticket: (aware(ticket.created_at), ticket.id), reverse=True)
        if cursor is not None:
            at, last_id = decode_cursor(cursor, datetime, str)
            found = [t for t in found if (aware(t.created_at), t.id) < (at, last_id)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], encode_cursor(aware(last.created_at), last.id)

    async def queue_of(self, assignee: str) -> list[SupportTicket]:
        return self.rows.where(
            SupportTicket, lambda t: t.assignee == assignee and t.status in OPEN_STATUSES
        )

    async def comments_of(self, ticket_id: str) -> list[SupportTicketComment]:
        comments = self.rows.where(SupportTicketComment, lambda c: c.ticket_id == ticket_id)
        return sorted(comments, key=lambda c: (aware(c.created_at), c.id))

    async def move_comments(self, from_ticket: str, to_ticket: str) -> None:
        for comment in self.rows.where(SupportTicketComment, lambda c: c.ticket_id == from_ticket):
            comment.ticket_id = to_ticket

    async def get_link(self, first: str, second: str) -> SupportTicketLink | None:
        return self.rows.get(SupportTicketLink, first, second)

    async def links_of(self, ticket_id: str) -> list[SupportTicketLink]:
        links = self.rows.where(
            SupportTicketLink, lambda link: ticket_id in (link.ticket_id, link.linked_ticket_id)
        )
        return sorted(links, key=lambda link: aware(link.created_at))

    async def breaches_for(self, ticket_ids: Iterable[str]) -> dict[str, list[SupportSlaBreach]]:
        found: dict[str, list[SupportSlaBreach]] = {ticket_id: [] for ticket_id in ticket_ids}
        breaches = self.rows.where(SupportSlaBreach, lambda b: b.ticket_id in found)
        for breach in sorted(breaches, key=lambda b: aware(b.breached_at)):
            found[breach.ticket_id].append(breach)
        return found

    async def get_breach(self, ticket_id: str, target: str) -> SupportSlaBreach | None:
        found = self.rows.where(
            SupportSlaBreach, lambda b: b.ticket_id == ticket_id and b.target == target
        )
        return found[0] if found else None

    async def overdue_tickets(self, now: datetime, limit: int) -> list[tuple[SupportTicket, str]]:
        recorded = {(b.ticket_id, b.target) for b in self.rows.all(SupportSlaBreach)}
        open_tickets = self.rows.where(SupportTicket, lambda t: t.status in OPEN_STATUSES)
        found: list[tuple[SupportTicket, str]] = []
        for target in ("first_response", "resolution"):
            late = [
                ticket
                for ticket in open_tickets
                if aware(_due(ticket, target)) < now
                and _done(ticket, target) is None
                and (ticket.id, target) not in recorded
            ]
            late.sort(key=lambda ticket: (aware(_due(ticket, target)), ticket.id))
            found.extend((ticket, target) for ticket in late[:limit])
        return found

    async def similarity_candidates(
        self, product_model_key: str | None, exclude: str | None, limit: int
    ) -> list[SupportTicket]:
        found = self.rows.where(
            SupportTicket,
            lambda t: (
                t.duplicate_of is None
                and (product_model_key is None or t.product_model_key == product_model_key)
                and t.id != exclude
            ),
        )
        found.sort(key=lambda ticket: aware(ticket.created_at), reverse=True)
        return found[:limit]

    async def tickets_for_model(self, product_model_key: str, limit: int) -> list[SupportTicket]:
        found = self.rows.where(SupportTicket, lambda t: t.product_model_key == product_model_key)
        found.sort(key=lambda ticket: aware(ticket.created_at), reverse=True)
        return found[:limit]

    async def get_policy(self, priority: str) -> SupportSlaPolicy | None:
        return self.rows.get(SupportSlaPolicy, priority)

    async def policies(self) -> list[SupportSlaPolicy]:
        return self.rows.all(SupportSlaPolicy)

    async def tickets_of(self, customer_id: str) -> list[SupportTicket]:
        found = self.rows.where(SupportTicket, lambda t: t.customer_id == customer_id)
        return sorted(found, key=lambda t: (aware(t.created_at), t.id), reverse=True)

    async def comments_for(self, ticket_ids: Iterable[str]) -> list[SupportTicketComment]:
        wanted = set(ticket_ids)
        return self.rows.where(SupportTicketComment, lambda c: c.ticket_id in wanted)

    async def links_for(self, ticket_ids: Iterable[str]) -> list[SupportTicketLink]:
        wanted = set(ticket_ids)
        return self.rows.where(
            SupportTicketLink,
            lambda link: link.ticket_id in wanted or link.linked_ticket_id in wanted,
        )

    async def move_tickets(self, from_id: str, to_id: str) -> None:
        for ticket in self.rows.where(SupportTicket, lambda t: t.customer_id == from_id):
            ticket.customer_id = to_id

    async def forget_tickets_of(self, customer_id: str) -> None:
        owned = await self.tickets_of(customer_id)
        tickets = {ticket.id for ticket in owned}
        for duplicate in self.rows.where(SupportTicket, lambda t: t.duplicate_of in tickets):
            duplicate.duplicate_of = None
        for row in [
            *await self.comments_for(tickets),
            *await self.links_for(tickets),
            *self.rows.where(SupportSlaBreach, lambda b: b.ticket_id in tickets),
            *owned,
        ]:
            self.rows.delete(row)


def _due(ticket: SupportTicket, target: str) -> datetime:
    return ticket.first_response_due_at if target == "first_response" else ticket.resolution_due_at


def _done(ticket: SupportTicket, target: str) -> datetime | None:
    return ticket.first_responded_at if target == "first_response" else ticket.resolved_at


class FakeCustomerStore(FakeStore):
    """Merges (`SupportMergedCustomer`) and erasures (`ErasedCustomer`) among the rows,
    resolved by the same `rapport_events.customer_ids` as the SQL store."""

    async def resolve(self, customer_id: str) -> str | None:
        return await customer_ids.resolve(customer_id, self._survivors_of, self._erased_among)

    async def handle_owner(self, platform: str, handle_key: str) -> str | None:
        owner = self.rows.get(SupportHandle, platform, handle_key)
        return owner.customer_id if owner is not None else None

    async def context_rows(self, customer_id: str, mentions: int) -> ContextRows:
        customer = self.rows.get(SupportCustomer, customer_id)
        products = await FakeProductLookup(self.rows).products_of(customer_id)
        tickets = self.rows.where(SupportTicket, lambda t: t.customer_id == customer_id)
        tickets.sort(key=lambda t: (aware(t.created_at), t.id), reverse=True)
        found = self.rows.where(SupportMention, lambda m: m.customer_id == customer_id)
        found.sort(key=lambda m: (aware(m.received_at), m.id), reverse=True)
        # As the SQL: a customer's handles and consents only when the customer is known.
        handles = self.rows.where(SupportHandle, lambda h: h.customer_id == customer_id)
        consents = self.rows.where(SupportConsent, lambda c: c.customer_id == customer_id)
        known = customer is not None
        return ContextRows(
            customer=customer,
            products=products,
            tickets=tickets,
            handles=sorted(handles, key=lambda h: h.platform) if known else [],
            consents=sorted(consents, key=lambda c: (c.purpose, c.scope)) if known else [],
            mentions=found[:mentions],
        )

    async def _survivors_of(self, merged_ids: set[str]) -> dict[str, str]:
        aliases = [self.rows.get(SupportMergedCustomer, merged_id) for merged_id in merged_ids]
        return {alias.merged_id: alias.customer_id for alias in aliases if alias is not None}

    async def _erased_among(self, customer_ids: set[str]) -> set[str]:
        return {c for c in customer_ids if self.rows.get(ErasedCustomer, c) is not None}

    async def get_customer(self, customer_id: str) -> SupportCustomer | None:
        return self.rows.get(SupportCustomer, customer_id)

    async def is_erased(self, customer_id: str) -> bool:
        return self.rows.get(ErasedCustomer, customer_id) is not None

    async def merged_into(self, merged_id: str) -> str | None:
        alias = self.rows.get(SupportMergedCustomer, merged_id)
        return alias.customer_id if alias is not None else None

    async def aliases_of(self, customer_id: str) -> list[SupportMergedCustomer]:
        return self.rows.where(SupportMergedCustomer, lambda a: a.customer_id == customer_id)

    async def consents_of(self, customer_id: str) -> list[SupportConsent]:
        found = self.rows.where(SupportConsent, lambda c: c.customer_id == customer_id)
        return sorted(found, key=lambda c: (c.purpose, c.scope))

    async def handles_of(self, customer_id: str) -> list[SupportHandle]:
        found = self.rows.where(SupportHandle, lambda h: h.customer_id == customer_id)
        return sorted(found, key=lambda h: h.platform)

    async def move_customer(self, from_id: str, to_id: str) -> None:
        for row in [*await self.handles_of(from_id), *await self.aliases_of(from_id)]:
            row.customer_id = to_id
        for consent in await self.consents_of(from_id):
            self.rows.delete(consent)

    async def forget_customer(self, customer_id: str) -> None:
        customer = self.rows.get(SupportCustomer, customer_id)
        for row in [
            *await self.handles_of(customer_id),
            *await self.consents_of(customer_id),
            *await self.aliases_of(customer_id),
            *([customer] if customer is not None else []),
        ]:
            self.rows.delete(row)


class FakeProductLookup(FakeStore):
    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None:
        found = self.rows.where(
            SupportProduct,
            lambda p: (
                p.customer_id == customer_id
                and (p.serial_number or "").lower() == serial_number.lower()
            ),
        )
        return found[0] if found else None

    async def products_of(self, customer_id: str) -> list[SupportProduct]:
        owned = self.rows.where(SupportProduct, lambda p: p.customer_id == customer_id)
        # Newest purchase first, then by order line, as the SQL orders them.
        owned.sort(key=lambda p: p.line_no)
        owned.sort(key=lambda p: aware(p.purchased_at), reverse=True)
        return owned

    async def move_products(self, from_id: str, to_id: str) -> None:
        for product in self.rows.where(SupportProduct, lambda p: p.customer_id == from_id):
            product.customer_id = to_id

    async def forget_products(self, customer_id: str) -> None:
        for product in self.rows.where(SupportProduct, lambda p: p.customer_id == customer_id):
            self.rows.delete(product)


class FakeMentionStore(FakeStore):
    async def get_mention(self, mention_id: str) -> SupportMention | None:
        return self.rows.get(SupportMention, mention_id)

    async def mention_by_external_id(
        self, platform: str, external_id: str
    ) -> SupportMention | None:
        found = self.rows.where(
            SupportMention, lambda m: m.platform == platform and m.external_id == external_id
        )
        return found[0] if found else None

    @staticmethod
    def _matches(mention: SupportMention, where: MentionFilter) -> bool:
        checks = [
            where.platform is None or mention.platform == where.platform.lower(),
            where.sentiment is None or mention.sentiment == where.sentiment,
            where.status is None or mention.status == where.status,
            where.kind is None or mention.kind == where.kind,
            where.customer_id is None or mention.customer_id == where.customer_id,
            where.linked is None or where.linked == (mention.customer_id is not None),
        ]
        return all(checks)

    async def list_mentions(
        self, where: MentionFilter, limit: int, cursor: str | None
    ) -> tuple[list[SupportMention], str | None]:
        found = self.rows.where(SupportMention, lambda m: self._matches(m, where))
        found.sort(key=lambda m: (aware(m.received_at), m.id), reverse=True)
        if cursor is not None:
            at, last_id = decode_cursor(cursor, datetime, str)
            found = [m for m in found if (aware(m.received_at), m.id) < (aware(at), last_id)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], encode_cursor(last.received_at, last.id)

    async def get_reply(self, reply_id: str) -> SupportMentionReply | None:
        return self.rows.get(SupportMentionReply, reply_id)

    async def replies_of(self, mention_id: str) -> list[SupportMentionReply]:
        replies = self.rows.where(SupportMentionReply, lambda r: r.mention_id == mention_id)
        return sorted(replies, key=lambda r: (aware(r.created_at), r.id))

    async def attempts_for(self, reply_ids: Iterable[str]) -> list[SupportReplyAttempt]:
        wanted = set(reply_ids)
        attempts = self.rows.where(SupportReplyAttempt, lambda a: a.reply_id in wanted)
        return sorted(attempts, key=lambda a: (a.reply_id, a.attempt))

    async def claim_due_replies(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[SupportMentionReply]:
        due = self.rows.where(
            SupportMentionReply,
            lambda r: (
                r.status == "pending"
                and r.next_attempt_at is not None
                and aware(r.next_attempt_at) <= now
            ),
        )
        due.sort(key=lambda r: (aware(r.next_attempt_at or now), r.id))
        for reply in due[:limit]:
            reply.attempts += 1
            reply.next_attempt_at = lease_until
        return sorted(due[:limit], key=lambda r: r.id)

    async def mentions_of(self, customer_id: str) -> list[SupportMention]:
        found = self.rows.where(SupportMention, lambda m: m.customer_id == customer_id)
        return sorted(found, key=lambda m: (aware(m.received_at), m.id), reverse=True)

    async def replies_for(self, mention_ids: Iterable[str]) -> list[SupportMentionReply]:
        wanted = set(mention_ids)
        return self.rows.where(SupportMentionReply, lambda r: r.mention_id in wanted)

    async def move_mentions(self, from_id: str, to_id: str) -> None:
        for mention in self.rows.where(SupportMention, lambda m: m.customer_id == from_id):
            mention.customer_id = mention.subject_id = to_id

    async def forget_mentions_of(self, customer_id: str) -> None:
        mentions = await self.mentions_of(customer_id)
        replies = await self.replies_for(mention.id for mention in mentions)
        attempts = await self.attempts_for(reply.id for reply in replies)
        for row in [*attempts, *replies, *mentions]:
            self.rows.delete(row)


class FakeSupportUnitOfWork(FakeUnitOfWork):
    """The customers', tickets' and mentions' stores and the product look-up over one set of
    rows, and a recording outbox."""

    def __init__(self) -> None:
        super().__init__()
        self.tickets = FakeTicketStore(self.rows)
        self.mentions = FakeMentionStore(self.rows)
        self.customers = FakeCustomerStore(self.rows)
        self.products = FakeProductLookup(self.rows)


if TYPE_CHECKING:
    # The fakes match the Protocols structurally, member by member (subclassing a Protocol
    # would inherit its empty bodies, and a missing query would go unnoticed).
    _checked: SupportUnitOfWork = FakeSupportUnitOfWork()
