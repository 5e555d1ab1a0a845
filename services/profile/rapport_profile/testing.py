"""In-memory fakes of what profile's use cases ask of its stores, for unit tests: the same
queries as the SQL ones, answered with plain Python over rows kept by primary key.

`FakeProfileUnitOfWork` puts them on one set of rows with a `FakeOutbox`; mypy checks it
is a `ProfileUnitOfWork`, so a fake that lacks a query, or answers it with another
signature, fails the lint.
"""

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rapport_events import customer_ids
from rapport_events.testing.unit_of_work import FakeStore, FakeUnitOfWork, Rows
from rapport_profile.analytics.models import CustomerMetrics, Order
from rapport_profile.consents.models import Consent, ConsentChange
from rapport_profile.customers.models import (
    Account,
    AccountMember,
    Customer,
    IdempotentRequest,
    SegmentMembership,
)
from rapport_profile.gdpr.models import Erasure
from rapport_profile.identity.models import Identity, Merge
from rapport_profile.identity.store import ALIAS, FOLLOWING
from rapport_profile.shared import aware
from rapport_profile.timeline.models import Disclosure, TimelineEntry
from rapport_profile.tracking.models import TrackedMessage

if TYPE_CHECKING:
    from rapport_profile.unit_of_work import ProfileUnitOfWork


class FakeCustomerStore(FakeStore):
    async def get_customer(self, customer_id: str) -> Customer | None:
        return self.rows.get(Customer, customer_id)

    async def customer_row(self, customer_id: str) -> Any | None:
        return self.rows.get(Customer, customer_id)

    async def lock_customer(self, customer_id: str) -> Customer | None:
        return self.rows.get(Customer, customer_id)

    async def customers_among(self, customer_ids: Collection[str]) -> list[Customer]:
        wanted = set(customer_ids)
        return self.rows.where(Customer, lambda customer: customer.id in wanted)

    async def find_by_email(self, email: str) -> Customer | None:
        found = self.rows.where(Customer, lambda customer: customer.email == email.lower())
        return found[0] if found else None

    async def find_by_external_ids(self, external_ids: dict[str, str]) -> list[Customer]:
        pairs = set(external_ids.items())
        return self.rows.where(
            Customer,
            lambda c: c.status == "active" and bool(pairs & set((c.external_ids or {}).items())),
        )

    async def get_idempotent(self, key: str) -> IdempotentRequest | None:
        return self.rows.get(IdempotentRequest, key)

    async def customers_merged_into(self, customer_id: str) -> list[Customer]:
        return self.rows.where(Customer, lambda customer: customer.merged_into == customer_id)

    async def get_account(self, account_id: str) -> Account | None:
        return self.rows.get(Account, account_id)

    async def memberships_of(self, customer_id: str) -> list[AccountMember]:
        return self.rows.where(AccountMember, lambda member: member.customer_id == customer_id)

    async def accounts_of(self, customer_id: str) -> list[Account]:
        joined = sorted(
            await self.memberships_of(customer_id), key=lambda m: (aware(m.joined_at), m.account_id)
        )
        accounts = [self.rows.get(Account, member.account_id) for member in joined]
        return [account for account in accounts if account is not None]


class FakeConsentStore(FakeStore):
    async def consents_of(self, customer_id: str) -> list[Consent]:
        found = self.rows.where(Consent, lambda consent: consent.customer_id == customer_id)
        return sorted(found, key=lambda c: (c.purpose, c.channel, c.partner_id))

    async def consents_among(self, customer_ids: Collection[str], purpose: str) -> list[Consent]:
        wanted = set(customer_ids)
        return self.rows.where(Consent, lambda c: c.customer_id in wanted and c.purpose == purpose)

    async def get_consent(
        self, customer_id: str, purpose: str, channel: str, partner_id: str
    ) -> Consent | None:
        key = (customer_id, purpose, channel, partner_id)
        found = self.rows.where(
            Consent, lambda c: (c.customer_id, c.purpose, c.channel, c.partner_id) == key
        )
        return found[0] if found else None

    async def consent_history(self, customer_id: str) -> list[ConsentChange]:
        found = self.rows.where(ConsentChange, lambda change: change.customer_id == customer_id)
        return sorted(found, key=lambda change: (change.version, change.id or 0))

    async def delete_consents(self, customer_id: str) -> None:
        for consent in await self.consents_of(customer_id):
            self.rows.delete(consent)


class FakeIdentityStore(FakeStore):
    """Merges are the alias identities among the rows, and erasures their `Erasure` rows,
    followed by the same `rapport_events.customer_ids` as the SQL look-ups."""

    async def survivor_of(self, customer_id: str) -> str:
        owners = await customer_ids.owners_through_merges([customer_id], self._survivors_of)
        return owners[customer_id]

    async def resolve(self, customer_id: str) -> str | None:
        owners = await customer_ids.resolve_all(
            [customer_id], self._survivors_of, self._erased_among
        )
        return owners[customer_id]

    async def _survivors_of(self, merged_ids: set[str]) -> dict[str, str]:
        aliases = [self.rows.get(Identity, ALIAS, merged_id) for merged_id in merged_ids]
        return {alias.value: alias.customer_id for alias in aliases if alias is not None}

    async def _erased_among(self, customer_ids: set[str]) -> set[str]:
        return {c for c in customer_ids if self.rows.get(Erasure, c) is not None}

    async def identities_of(self, customer_id: str) -> list[Identity]:
        return self.rows.where(Identity, lambda identity: identity.customer_id == customer_id)

    async def get_identity(self, kind: str, value: str) -> Identity | None:
        return self.rows.get(Identity, kind, value)

    async def identities_among(self, kind: str, values: Collection[str]) -> list[Identity]:
        wanted = set(values)
        return self.rows.where(Identity, lambda i: i.kind == kind and i.value in wanted)

    async def repoint_identities(self, old: str, new: str) -> list[tuple[str, str]]:
        moved = await self.identities_of(old)
        for identity in moved:
            identity.customer_id = new
        return [(identity.kind, identity.value) for identity in moved]

    async def move_identities(self, pairs: Sequence[Sequence[str]], customer_id: str) -> None:
        for kind, value in pairs:
            identity = self.rows.get(Identity, kind, value)
            if identity is not None:
                identity.customer_id = customer_id

    async def delete_identity(self, kind: str, value: str) -> None:
        identity = self.rows.get(Identity, kind, value)
        if identity is not None:
            self.rows.delete(identity)

    async def open_merge(self, customer_id: str, merged_id: str) -> Merge | None:
        found = self.rows.where(
            Merge,
            lambda m: (
                (m.customer_id, m.merged_customer_id) == (customer_id, merged_id)
                and m.undone_at is None
            ),
        )
        return max(found, key=lambda m: aware(m.merged_at), default=None)

    async def move_rows(self, old: str, new: str) -> None:
        for model, owner, _subject in FOLLOWING:
            for row in [r for r in self.rows.all(model) if getattr(r, owner) == old]:
                setattr(row, owner, new)
        self._move_keyed(SegmentMembership, "segment_id", old, new)
        self._move_keyed(AccountMember, "account_id", old, new)

    def _move_keyed(
        self, model: type[SegmentMembership | AccountMember], other: str, old: str, new: str
    ) -> None:
        """Rows keyed by (customer, `other`): one row per key, the survivor's kept."""
        held = self.rows.all(model)
        mine = {getattr(r, other) for r in held if r.customer_id == new}
        for row in [r for r in held if r.customer_id == old]:
            self.rows.delete(row)
            if getattr(row, other) not in mine:
                self.rows.add(model.model_validate({**row.model_dump(), "customer_id": new}))

    async def move_rows_back(self, current: str, subjects: Sequence[str], restored: str) -> None:
        for model, owner, subject in FOLLOWING:
            if subject is None:
                continue
            for row in self.rows.all(model):
                if getattr(row, owner) == current and getattr(row, subject) in subjects:
                    setattr(row, owner, restored)


class FakeTimelineStore(FakeStore):
    async def timeline_page(
        self,
        customer_id: str,
        *,
        types: Sequence[str],
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[TimelineEntry]:
        def shown(entry: TimelineEntry) -> bool:
            return (
                entry.customer_id == customer_id
                and (not types or entry.type in types)
                and (before is None or _position(entry) < (aware(before[0]), before[1]))
            )

        return sorted(self.rows.where(TimelineEntry, shown), key=_position, reverse=True)[:limit]

    async def has_timeline(self, customer_id: str) -> bool:
        return bool(self.rows.where(TimelineEntry, lambda entry: entry.customer_id == customer_id))

    async def disclosures_of(self, customer_id: str) -> list[Disclosure]:
        found = self.rows.where(Disclosure, lambda d: d.customer_id == customer_id)
        by_id = sorted(found, key=lambda d: d.id)
        return sorted(by_id, key=lambda d: aware(d.disclosed_at), reverse=True)


def _position(entry: TimelineEntry) -> tuple[datetime, str]:
    return aware(entry.occurred_at), entry.id


def _totals(orders: list[Order]) -> tuple[Any, ...]:
    """(count, revenue, profit, first, last), cost unknown counting as nothing."""
    times = [order.occurred_at for order in orders]
    return (
        len(orders),
        sum((order.revenue for order in orders), Decimal(0)),
        sum((order.revenue - (order.cost or 0) for order in orders), Decimal(0)),
        min(times),
        max(times),
    )


class FakeAnalyticsStore(FakeStore):
    async def order_totals_of(self, customer_ids: Collection[str]) -> dict[str, tuple[Any, ...]]:
        wanted = set(customer_ids)
        orders: dict[str, list[Order]] = {}
        for order in self.rows.where(Order, lambda o: o.customer_id in wanted):
            orders.setdefault(order.customer_id, []).append(order)
        return {customer_id: _totals(theirs) for customer_id, theirs in orders.items()}

    async def upsert_metrics(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> None:
        for row in rows:
            held = self.rows.get(CustomerMetrics, row["customer_id"])
            if held is None:
                self.rows.add(CustomerMetrics.model_validate(row))
                continue
            for name in columns:
                setattr(held, name, row[name])

    async def delete_metrics(self, customer_id: str) -> None:
        held = self.rows.get(CustomerMetrics, customer_id)
        if held is not None:
            self.rows.delete(held)

    async def get_metrics(self, customer_id: str) -> CustomerMetrics | None:
        return self.rows.get(CustomerMetrics, customer_id)

    async def spend_by_month(self, customer_id: str) -> list[tuple[str, int, Any]]:
        months: dict[str, list[Decimal]] = {}
        for order in self.rows.where(Order, lambda o: o.customer_id == customer_id):
            month = aware(order.occurred_at).astimezone(UTC).strftime("%Y-%m")
            months.setdefault(month, []).append(Decimal(order.revenue))
        return [(month, len(spent), sum(spent)) for month, spent in sorted(months.items())]

    async def metrics_of_active(self) -> list[CustomerMetrics]:
        active = {c.id for c in self.rows.where(Customer, lambda c: c.status == "active")}
        return self.rows.where(CustomerMetrics, lambda m: m.customer_id in active)

    async def orders_between(
        self, start: datetime | None, end: datetime | None
    ) -> list[tuple[Order, Customer | None]]:
        found = self.rows.where(Order, lambda o: _within(o.occurred_at, start, end))
        return [(order, self.rows.get(Customer, order.customer_id)) for order in found]

    async def customers_created_between(
        self, start: datetime | None, end: datetime | None
    ) -> list[Customer]:
        return self.rows.where(
            Customer,
            lambda c: (
                c.status in ("active", "merged")
                and c.merged_into is None
                and _within(c.created_at, start, end)
            ),
        )


def _within(at: datetime, start: datetime | None, end: datetime | None) -> bool:
    """`at` in [start, end), an open end unbounded."""
    return (start is None or aware(at) >= start) and (end is None or aware(at) < end)


class FakeTrackingStore(FakeStore):
    async def seen_message_ids(self, message_ids: Collection[str]) -> set[str]:
        return {m for m in message_ids if self.rows.get(TrackedMessage, m) is not None}


class FakeGdprStore(FakeStore):
    """Erasures and any domain's rows of a customer; `shredded` lists the customers whose
    personal fields on the log were made unreadable, in order."""

    def __init__(self, rows: Rows) -> None:
        super().__init__(rows)
        self.shredded: list[str] = []

    async def get_erasure(self, customer_id: str) -> Erasure | None:
        return self.rows.get(Erasure, customer_id)

    async def erased_among(self, customer_ids: Collection[str]) -> set[str]:
        return {c for c in customer_ids if self.rows.get(Erasure, c) is not None}

    async def rows_of(self, model: Any, column: str, customer_id: str) -> list[Any]:
        return self.rows.where(model, lambda row: getattr(row, column) == customer_id)

    async def delete_rows(self, model: Any, column: str, customer_id: str) -> None:
        for row in await self.rows_of(model, column, customer_id):
            self.rows.delete(row)

    async def delete_sent_outbox_rows(self, keys: Sequence[str]) -> int:
        # The fake outbox sends nothing: every event it holds is still to go out.
        return 0

    async def shred(self, customer_id: str) -> None:
        self.shredded.append(customer_id)


class FakeProfileUnitOfWork(FakeUnitOfWork):
    """Every converted domain's store over one set of rows, and a recording outbox."""

    def __init__(self) -> None:
        super().__init__()
        self.customers = FakeCustomerStore(self.rows)
        self.consents = FakeConsentStore(self.rows)
        self.identity = FakeIdentityStore(self.rows)
        self.timeline = FakeTimelineStore(self.rows)
        self.analytics = FakeAnalyticsStore(self.rows)
        self.tracking = FakeTrackingStore(self.rows)
        self.gdpr = FakeGdprStore(self.rows)


if TYPE_CHECKING:
    # The fakes match the Protocols structurally, member by member (subclassing a Protocol
    # would inherit its empty bodies, and a missing query would go unnoticed).
    _checked: ProfileUnitOfWork = FakeProfileUnitOfWork()
