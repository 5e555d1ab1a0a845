"""Every query of the consents domain: a customer's consents, a partner's by ref or by
change, and those waiting for profile's data.

The partner API's reads, the filler, the merge, the erasure and the export ask theirs of a
`ConsentStore` (`SqlConsentStore` here, a fake in `rapport_partner_share.testing`); the end
of a partnership deletes through `SqlConsentStore` too (`unit_of_work.SqlPartnerShares`).
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy import and_, delete, or_
from sqlmodel import col, select

from rapport_events.unit_of_work import SqlStore
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.shared import owner


class ConsentStore(Protocol):
    def add(self, row: PartnerConsent) -> None: ...

    async def get_consent(
        self, customer_id: str, partner_id: str, *, lock: bool = False
    ) -> PartnerConsent | None:
        """One consent; `lock` reads it fresh and locked, for a change decided on it."""
        ...

    async def granted_consent_by_ref(self, partner_id: str, ref: str) -> PartnerConsent | None:
        """The granted consent behind the partner's ref, if any."""
        ...

    async def granted_consents(
        self, partner_id: str, customer_ids: Iterable[str]
    ) -> list[PartnerConsent]:
        """The partner's granted consents of these customers."""
        ...

    async def changed_consents(
        self,
        partner_id: str,
        *,
        since: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[PartnerConsent]:
        """Granted consents of a partner in (changed_at, customer_id) order, for the feed."""
        ...

    async def due_fills(self, now: datetime, limit: int) -> list[PartnerConsent]:
        """Granted consents waiting for profile's data, due by `now`; another filler skips
        them until this transaction ends."""
        ...

    # What the merge, the erasure and the export ask.

    async def delete(self, row: PartnerConsent) -> None: ...

    async def consents_of_customer(self, customer_id: str) -> list[PartnerConsent]:
        """The customer's consents, by partner."""
        ...

    async def delete_consents_of(self, customer_id: str) -> None:
        """Delete every consent of the customer."""
        ...


class SqlConsentStore(SqlStore):
    async def get_consent(
        self, customer_id: str, partner_id: str, *, lock: bool = False
    ) -> PartnerConsent | None:
        return await self.session.get(
            PartnerConsent, (customer_id, partner_id), with_for_update=lock, populate_existing=lock
        )

    async def granted_consent_by_ref(self, partner_id: str, ref: str) -> PartnerConsent | None:
        result = await self.session.exec(
            select(PartnerConsent).where(
                col(PartnerConsent.partner_id) == partner_id,
                col(PartnerConsent.ref) == ref,
                col(PartnerConsent.granted).is_(True),
            )
        )
        return result.first()

    async def granted_consents(
        self, partner_id: str, customer_ids: Iterable[str]
    ) -> list[PartnerConsent]:
        result = await self.session.exec(
            select(PartnerConsent).where(
                col(PartnerConsent.partner_id) == partner_id,
                col(PartnerConsent.customer_id).in_(list(customer_ids)),
                col(PartnerConsent.granted).is_(True),
            )
        )
        return list(result.all())

    async def changed_consents(
        self,
        partner_id: str,
        *,
        since: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[PartnerConsent]:
        query = select(PartnerConsent).where(
            col(PartnerConsent.partner_id) == partner_id, col(PartnerConsent.granted).is_(True)
        )
        if since is not None:
            query = query.where(col(PartnerConsent.changed_at) > since)
        if after is not None:
            changed_at, customer_id = after
            query = query.where(
                or_(
                    col(PartnerConsent.changed_at) > changed_at,
                    and_(
                        col(PartnerConsent.changed_at) == changed_at,
                        col(PartnerConsent.customer_id) > customer_id,
                    ),
                )
            )
        query = query.order_by(col(PartnerConsent.changed_at), col(PartnerConsent.customer_id))
        return list((await self.session.exec(query.limit(limit))).all())

    async def due_fills(self, now: datetime, limit: int) -> list[PartnerConsent]:
        result = await self.session.exec(
            select(PartnerConsent)
            .where(
                col(PartnerConsent.fill_pending).is_(True),
                col(PartnerConsent.granted).is_(True),
                or_(
                    col(PartnerConsent.fill_next_at).is_(None),
                    col(PartnerConsent.fill_next_at) <= now,
                ),
            )
            # First attempts before retries on both databases (PostgreSQL sorts NULL last).
            .order_by(
                col(PartnerConsent.fill_next_at).asc().nulls_first(),
                col(PartnerConsent.customer_id),
                col(PartnerConsent.partner_id),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return list(result.all())

    async def consents_of_customer(self, customer_id: str) -> list[PartnerConsent]:
        query = select(PartnerConsent).where(col(PartnerConsent.customer_id) == customer_id)
        return list((await self.session.exec(query.order_by(col(PartnerConsent.partner_id)))).all())

    async def delete_consents_of(self, customer_id: str) -> None:
        await self.delete_consents(customer_id=customer_id)

    async def delete_consents(
        self, *, customer_id: str | None = None, partner_id: str | None = None
    ) -> None:
        """Delete the consents of a customer or of a partner, one statement."""
        await self.session.exec(
            delete(PartnerConsent).where(*owner(PartnerConsent, customer_id, partner_id))
        )
