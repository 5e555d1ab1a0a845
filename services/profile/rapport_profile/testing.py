"""In-memory fakes of what the customers and consents use cases ask of profile's stores,
for unit tests: the same queries as the SQL ones, answered with plain Python over rows kept
by primary key.

`FakeProfileUnitOfWork` puts them on one set of rows with a `FakeOutbox`; mypy checks it
is a `ProfileUnitOfWork`, so a fake that lacks a query, or answers it with another
signature, fails the lint.
"""

from collections.abc import Collection
from typing import TYPE_CHECKING

from rapport_events import customer_ids
from rapport_events.testing.unit_of_work import FakeStore, FakeUnitOfWork
from rapport_profile.consents.models import Consent, ConsentChange
from rapport_profile.customers.models import Customer, IdempotentRequest
from rapport_profile.identity.models import Identity
from rapport_profile.identity.service import ALIAS

if TYPE_CHECKING:
    from rapport_profile.unit_of_work import ProfileUnitOfWork


class FakeCustomerStore(FakeStore):
    async def get_customer(self, customer_id: str) -> Customer | None:
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


class FakeIdentityLookup(FakeStore):
    """Merges are the alias identities among the rows, followed by the same
    `rapport_events.customer_ids` as the SQL look-up."""

    async def survivor_of(self, customer_id: str) -> str:
        owners = await customer_ids.owners_through_merges([customer_id], self._survivors_of)
        return owners[customer_id]

    async def _survivors_of(self, merged_ids: set[str]) -> dict[str, str]:
        aliases = [self.rows.get(Identity, ALIAS, merged_id) for merged_id in merged_ids]
        return {alias.value: alias.customer_id for alias in aliases if alias is not None}


class FakeProfileUnitOfWork(FakeUnitOfWork):
    """The customers' and consents' stores and the identity look-up over one set of rows,
    and a recording outbox."""

    def __init__(self) -> None:
        super().__init__()
        self.customers = FakeCustomerStore(self.rows)
        self.consents = FakeConsentStore(self.rows)
        self.identity = FakeIdentityLookup(self.rows)


if TYPE_CHECKING:
    # The fakes match the Protocols structurally, member by member (subclassing a Protocol
    # would inherit its empty bodies, and a missing query would go unnoticed).
    _checked: ProfileUnitOfWork = FakeProfileUnitOfWork()
