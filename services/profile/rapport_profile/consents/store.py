"""Every query on consents and their history.

`ConsentStore` is what the use cases ask of it; `SqlConsentStore` answers on the
transaction's session, and `rapport_profile.testing` has the in-memory fake."""

from collections.abc import Collection
from typing import Protocol

from sqlalchemy import (
    delete,
)
from sqlmodel import SQLModel, col, select

from rapport_events.unit_of_work import SqlStore
from rapport_profile.consents.models import Consent, ConsentChange
from rapport_profile.shared import _chunks


class ConsentStore(Protocol):
    def add(self, row: SQLModel) -> None: ...

    async def delete(self, row: SQLModel) -> None: ...

    async def consents_of(self, customer_id: str) -> list[Consent]:
        """By purpose, channel and partner."""
        ...

    async def consents_among(self, customer_ids: Collection[str], purpose: str) -> list[Consent]:
        """The consents for `purpose` of any of these customers."""
        ...

    async def get_consent(
        self, customer_id: str, purpose: str, channel: str, partner_id: str
    ) -> Consent | None: ...

    async def consent_history(self, customer_id: str) -> list[ConsentChange]:
        """In version order."""
        ...

    async def delete_consents(self, customer_id: str) -> None: ...


class SqlConsentStore(SqlStore):
    async def consents_of(self, customer_id: str) -> list[Consent]:
        result = await self.session.exec(
            select(Consent)
            .where(Consent.customer_id == customer_id)
            .order_by(col(Consent.purpose), col(Consent.channel), col(Consent.partner_id))
        )
        return list(result.all())

    async def consents_among(self, customer_ids: Collection[str], purpose: str) -> list[Consent]:
        found: list[Consent] = []
        for chunk in _chunks(customer_ids):
            result = await self.session.exec(
                select(Consent).where(
                    col(Consent.customer_id).in_(chunk), Consent.purpose == purpose
                )
            )
            found.extend(result.all())
        return found

    async def get_consent(
        self, customer_id: str, purpose: str, channel: str, partner_id: str
    ) -> Consent | None:
        result = await self.session.exec(
            select(Consent).where(
                Consent.customer_id == customer_id,
                Consent.purpose == purpose,
                Consent.channel == channel,
                Consent.partner_id == partner_id,
            )
        )
        return result.first()

    async def consent_history(self, customer_id: str) -> list[ConsentChange]:
        result = await self.session.exec(
            select(ConsentChange)
            .where(ConsentChange.customer_id == customer_id)
            .order_by(col(ConsentChange.version), col(ConsentChange.id))
        )
        return list(result.all())

    async def delete_consents(self, customer_id: str) -> None:
        await self.session.exec(delete(Consent).where(col(Consent.customer_id) == customer_id))
