"""Every query of the audit ledger.

The ledger (`Disclosure`) is only ever inserted and read here: there is no update or
delete of it, and the database refuses one (see migration 0002). Only its link to the
customer (`DisclosureSubject`) moves at a merge and goes at an erasure.

The use cases, the merge, the erasure and the export ask them of a `LedgerStore`
(`SqlLedgerStore` here, a fake in `rapport_partner_share.testing`).
"""

from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, update
from sqlmodel import col, select

from rapport_events.unit_of_work import SqlStore
from rapport_partner_share.ledger.models import Disclosure, DisclosureSubject


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
        self.session.add(disclosure)
        await self.session.flush()
        assert disclosure.id is not None
        self.session.add(DisclosureSubject(disclosure_id=disclosure.id, customer_id=customer_id))
        return disclosure

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
        return [(row[0], row[1]) for row in (await self.session.exec(query)).all()]

    async def disclosures_of_subject(
        self, subject: str, *, before_id: int | None, limit: int
    ) -> list[Disclosure]:
        query = select(Disclosure).where(col(Disclosure.subject) == subject)
        if before_id is not None:
            query = query.where(col(Disclosure.id) < before_id)
        query = query.order_by(col(Disclosure.id).desc()).limit(limit)
        return list((await self.session.exec(query)).all())

    async def move_disclosure_subject(self, merged_id: str, surviving_id: str) -> None:
        await self.session.exec(
            update(DisclosureSubject)
            .where(col(DisclosureSubject.customer_id) == merged_id)
            .values(customer_id=surviving_id)
        )

    async def forget_disclosure_subject(self, customer_id: str) -> None:
        await self.session.exec(
            delete(DisclosureSubject).where(col(DisclosureSubject.customer_id) == customer_id)
        )
