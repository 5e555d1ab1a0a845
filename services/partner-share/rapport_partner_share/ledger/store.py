"""Every query of the audit ledger.

The ledger (`Disclosure`) is only ever inserted and read here: there is no update or
delete of it, and the database refuses one (see migration 0002). Only its link to the
customer (`DisclosureSubject`) moves at a merge and goes at an erasure.

The use cases, the merge, the erasure and the export ask them of a `LedgerStore`
(`SqlLedgerStore` here, on the module-level functions of the session; a fake in
`rapport_partner_share.testing`).
"""

from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import SqlStore
from rapport_partner_share.ledger.models import Disclosure, DisclosureSubject


async def append_disclosure(
    session: AsyncSession, disclosure: Disclosure, customer_id: str
) -> Disclosure:
    session.add(disclosure)
    await session.flush()
    assert disclosure.id is not None
    session.add(DisclosureSubject(disclosure_id=disclosure.id, customer_id=customer_id))
    return disclosure


async def list_disclosures(
    session: AsyncSession,
    *,
    partner_id: str | None,
    customer_id: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[tuple[Disclosure, str | None]]:
    """Ledger entries, newest first, with the customer they were about (None once erased)."""
    query = select(Disclosure, DisclosureSubject.customer_id).outerjoin(
        DisclosureSubject, col(DisclosureSubject.disclosure_id) == col(Disclosure.id)
    )
    if partner_id is not None:
        query = query.where(col(Disclosure.partner_id) == partner_id)
    if customer_id is not None:
        query = query.where(col(DisclosureSubject.customer_id) == customer_id)
    if since is not None:
        query = query.where(col(Disclosure.disclosed_at) >= since)
    if until is not None:
        query = query.where(col(Disclosure.disclosed_at) < until)
    if before_id is not None:
        query = query.where(col(Disclosure.id) < before_id)
    query = query.order_by(col(Disclosure.id).desc()).limit(limit)
    return [(row[0], row[1]) for row in (await session.exec(query)).all()]


async def disclosures_of_subject(
    session: AsyncSession, subject: str, *, before_id: int | None, limit: int
) -> list[Disclosure]:
    """Ledger entries under one subject pseudonym, newest first."""
    query = select(Disclosure).where(col(Disclosure.subject) == subject)
    if before_id is not None:
        query = query.where(col(Disclosure.id) < before_id)
    query = query.order_by(col(Disclosure.id).desc()).limit(limit)
    return list((await session.exec(query)).all())


async def forget_disclosure_subject(session: AsyncSession, customer_id: str) -> None:
    """Unlink the ledger from an erased customer; the entries themselves stay."""
    await session.exec(
        delete(DisclosureSubject).where(col(DisclosureSubject.customer_id) == customer_id)
    )


async def move_disclosure_subject(session: AsyncSession, merged_id: str, surviving_id: str) -> None:
    await session.exec(
        update(DisclosureSubject)
        .where(col(DisclosureSubject.customer_id) == merged_id)
        .values(customer_id=surviving_id)
    )


class LedgerStore(Protocol):
    async def append_disclosure(self, disclosure: Disclosure, customer_id: str) -> Disclosure:
        """Add an entry (numbered) and its link to the customer it is about."""
        ...

    async def list_disclosures(
        self,
        *,
        partner_id: str | None,
        customer_id: str | None,
        since: datetime | None,
        until: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[tuple[Disclosure, str | None]]:
        """Ledger entries, newest first, with the customer they were about (None once erased)."""
        ...

    async def disclosures_of_subject(
        self, subject: str, *, before_id: int | None, limit: int
    ) -> list[Disclosure]:
        """Ledger entries under one subject pseudonym, newest first."""
        ...

    # What the merge and the erasure ask.

    async def move_disclosure_subject(self, merged_id: str, surviving_id: str) -> None:
        """The entries about `merged_id` are about `surviving_id` now."""
        ...

    async def forget_disclosure_subject(self, customer_id: str) -> None:
        """Unlink the ledger from an erased customer; the entries themselves stay."""
        ...


class SqlLedgerStore(SqlStore):
    async def append_disclosure(self, disclosure: Disclosure, customer_id: str) -> Disclosure:
        return await append_disclosure(self.session, disclosure, customer_id)

    async def list_disclosures(
        self,
        *,
        partner_id: str | None,
        customer_id: str | None,
        since: datetime | None,
        until: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[tuple[Disclosure, str | None]]:
        return await list_disclosures(
            self.session,
            partner_id=partner_id,
            customer_id=customer_id,
            since=since,
            until=until,
            before_id=before_id,
            limit=limit,
        )

    async def disclosures_of_subject(
        self, subject: str, *, before_id: int | None, limit: int
    ) -> list[Disclosure]:
        return await disclosures_of_subject(self.session, subject, before_id=before_id, limit=limit)

    async def move_disclosure_subject(self, merged_id: str, surviving_id: str) -> None:
        await move_disclosure_subject(self.session, merged_id, surviving_id)

    async def forget_disclosure_subject(self, customer_id: str) -> None:
        await forget_disclosure_subject(self.session, customer_id)
