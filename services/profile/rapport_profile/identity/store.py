"""Every query on identities and merges, and the rows that follow a customer on a merge.

`IdentityStore` is what the use cases ask of it (merges and unmerges, the customers' e-mail
holder, whose timeline an id reads); `SqlIdentityStore` answers on the transaction's
session (the projections build it, or `RunLookups`, on theirs), and `rapport_profile.testing`
has the in-memory fake. Its `aliases_among` and `aliases_and_erasures` are the lookups the
resolution of a run's ids goes through, so only the SQL store has them."""

import functools
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from sqlalchemy import (
    String,
    and_,
    bindparam,
    delete,
    literal,
    or_,
    union_all,
    update,
)
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import customer_ids as customer_ids_kit
from rapport_events.unit_of_work import SqlStore
from rapport_profile.analytics.models import Order
from rapport_profile.customers.models import AccountMember, SegmentMembership
from rapport_profile.customers.store import SqlCustomerStore
from rapport_profile.gdpr.models import Erasure
from rapport_profile.gdpr.store import SqlGdprStore
from rapport_profile.identity.models import Identity, Merge
from rapport_profile.shared import _chunks
from rapport_profile.timeline.models import Disclosure, TimelineEntry
from rapport_profile.tracking.models import TrackedMessage

# The kind of identity that maps a merged (or pre-identification) id onto its owner.
ALIAS = "alias"


# Tables whose rows move with a merge: (model, owner column, original-subject column).
FOLLOWING: tuple[tuple[Any, str, str | None], ...] = (
    (TimelineEntry, "customer_id", "subject_id"),
    (Order, "customer_id", "subject_id"),
    (Disclosure, "customer_id", "subject_id"),
    (TrackedMessage, "customer_id", None),
)


class IdentityStore(Protocol):
    def add(self, row: SQLModel) -> None: ...

    async def survivor_of(self, customer_id: str) -> str:
        """The id that owns `customer_id` now, through merges, erased or not."""
        ...

    async def resolve(self, customer_id: str) -> str | None:
        """The id that owns `customer_id` now, through merges; None when erased."""
        ...

    async def identities_of(self, customer_id: str) -> list[Identity]: ...

    async def get_identity(self, kind: str, value: str) -> Identity | None: ...

    async def identities_among(self, kind: str, values: Collection[str]) -> list[Identity]:
        """The identities of one kind with any of these values (one set-based lookup)."""
        ...

    async def repoint_identities(self, old: str, new: str) -> list[tuple[str, str]]:
        """Point every identity of `old` at `new`; returns the moved (kind, value) pairs."""
        ...

    async def move_identities(self, pairs: Sequence[Sequence[str]], customer_id: str) -> None:
        """Point these (kind, value) identities at `customer_id`."""
        ...

    async def delete_identity(self, kind: str, value: str) -> None: ...

    async def open_merge(self, customer_id: str, merged_id: str) -> Merge | None:
        """The latest merge of `merged_id` into `customer_id` not undone yet."""
        ...

    async def move_rows(self, old: str, new: str) -> None:
        """Hand every row of `old` that follows a customer to `new` (`move_rows`)."""
        ...

    async def move_rows_back(self, current: str, subjects: Sequence[str], restored: str) -> None:
        """Return the rows published under `subjects` from `current` to `restored`."""
        ...


class SqlIdentityStore(SqlStore):
    async def survivor_of(self, customer_id: str) -> str:
        owners = await customer_ids_kit.owners_through_merges(
            [customer_id], functools.partial(self.aliases_among, ALIAS)
        )
        return owners[customer_id]

    async def resolve(self, customer_id: str) -> str | None:
        lookups = RunLookups(self.session, ALIAS)
        owners = await customer_ids_kit.resolve_all(
            [customer_id], lookups.survivors_of, lookups.erased_among
        )
        return owners[customer_id]

    async def identities_of(self, customer_id: str) -> list[Identity]:
        result = await self.session.exec(
            select(Identity).where(Identity.customer_id == customer_id)
        )
        return list(result.all())

    async def get_identity(self, kind: str, value: str) -> Identity | None:
        return await self.session.get(Identity, (kind, value))

    async def identities_among(self, kind: str, values: Collection[str]) -> list[Identity]:
        found: list[Identity] = []
        for chunk in _chunks(values):
            result = await self.session.exec(
                select(Identity).where(col(Identity.kind) == kind, col(Identity.value).in_(chunk))
            )
            found.extend(result.all())
        return found

    async def repoint_identities(self, old: str, new: str) -> list[tuple[str, str]]:
        moved = [(i.kind, i.value) for i in await self.identities_of(old)]
        await self.session.exec(
            update(Identity).where(col(Identity.customer_id) == old).values(customer_id=new)
        )
        return moved

    async def move_identities(self, pairs: Sequence[Sequence[str]], customer_id: str) -> None:
        for kind, value in pairs:
            await self.session.exec(
                update(Identity)
                .where(col(Identity.kind) == kind, col(Identity.value) == value)
                .values(customer_id=customer_id)
            )

    async def delete_identity(self, kind: str, value: str) -> None:
        await self.session.exec(
            delete(Identity).where(col(Identity.kind) == kind, col(Identity.value) == value)
        )

    async def aliases_among(self, kind: str, values: Collection[str]) -> dict[str, str]:
        """merged id -> the id it was merged into, for those of `values` with an alias of
        `kind`."""
        return {i.value: i.customer_id for i in await self.identities_among(kind, values)}

    async def aliases_and_erasures(
        self, customer_ids: Collection[str], alias_kind: str
    ) -> tuple[dict[str, str], set[str]]:
        """The aliases of these ids, and which of them or of the ids they alias were erased.

        One statement per IN_LIST ids, binding them three times (well under the limits).
        """
        aliases: dict[str, str] = {}
        erased: set[str] = set()
        for chunk in _chunks(customer_ids):
            params = {"subjects": chunk, "alias_kind": alias_kind}
            for what, subject, owner in await self.session.exec(
                ALIASES_AND_ERASURES, params=params
            ):
                if what == "alias":
                    aliases[subject] = owner
                else:
                    erased.add(subject)
        return aliases, erased

    async def open_merge(self, customer_id: str, merged_id: str) -> Merge | None:
        result = await self.session.exec(
            select(Merge)
            .where(
                Merge.customer_id == customer_id,
                Merge.merged_customer_id == merged_id,
                col(Merge.undone_at).is_(None),
            )
            .order_by(col(Merge.merged_at).desc())
        )
        return result.first()

    async def move_rows(self, old: str, new: str) -> None:
        session, customers = self.session, SqlCustomerStore(self.session)
        for model, owner, _subject in FOLLOWING:
            await session.exec(
                update(model).where(getattr(model, owner) == old).values({owner: new})
            )
        # Segment memberships are keyed by customer: keep one row per segment.
        theirs = await customers.segments_of(old)
        mine = {m.segment_id for m in await customers.segments_of(new)}
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
        await session.exec(
            delete(SegmentMembership).where(col(SegmentMembership.customer_id) == old)
        )
        # So are account memberships.
        joined = {m.account_id for m in await customers.memberships_of(new)}
        for member in await customers.memberships_of(old):
            if member.account_id not in joined:
                session.add(
                    AccountMember(
                        customer_id=new, account_id=member.account_id, joined_at=member.joined_at
                    )
                )
        await session.exec(delete(AccountMember).where(col(AccountMember.customer_id) == old))

    async def move_rows_back(self, current: str, subjects: Sequence[str], restored: str) -> None:
        if not subjects:
            return
        for model, owner, subject in FOLLOWING:
            if subject is None:
                continue
            await self.session.exec(
                update(model)
                .where(getattr(model, owner) == current, getattr(model, subject).in_(subjects))
                .values({owner: restored})
            )


def _aliases_and_erasures() -> Any:
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
ALIASES_AND_ERASURES = _aliases_and_erasures()


class RunLookups:
    """The two lookups `rapport_events.customer_ids` resolves through, for a run of events.

    Every run the consumer applies resolves its ids, so the common case is one statement:
    the ids' aliases with the erasures of the ids and of their owners. What that statement
    answered is kept, so later levels of a chain ask only for aliases and the erasure
    lookup asks only for ids not seen yet.
    """

    def __init__(self, session: AsyncSession, alias_kind: str) -> None:
        self._identity, self._gdpr = SqlIdentityStore(session), SqlGdprStore(session)
        self._kind = alias_kind
        self._erased: dict[str, bool] = {}

    async def survivors_of(self, customer_ids: set[str]) -> dict[str, str]:
        """merged id -> the id it was merged into, for those of `customer_ids` merged away."""
        unseen = customer_ids - self._erased.keys()
        aliases = await self._identity.aliases_among(self._kind, customer_ids - unseen)
        if unseen:
            found, erased = await self._identity.aliases_and_erasures(unseen, self._kind)
            for customer_id in unseen | set(found.values()):
                self._erased[customer_id] = customer_id in erased
            aliases.update(found)
        return aliases

    async def erased_among(self, customer_ids: set[str]) -> set[str]:
        """Which of these ids were erased."""
        unseen = customer_ids - self._erased.keys()
        if unseen:
            erased = await self._gdpr.erased_among(unseen)
            for customer_id in unseen:
                self._erased[customer_id] = customer_id in erased
        return {customer_id for customer_id in customer_ids if self._erased[customer_id]}
