"""Every query of the customers domain: who a customer is, where a merge sent them, whether
they were erased, and the rows of the support context.

The use cases, the merge, the erasure and the export ask theirs of a `CustomerStore`
(`SqlCustomerStore` here, a fake in `rapport_support.testing`); the projections resolve
their batches' ids through its `survivors_of` and `erased_among`
(`customers.service.resolve_all`), and write with the shared set-based kit here.
"""

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, update
from sqlalchemy import select as core_select
from sqlmodel import SQLModel, col, select

from rapport_events import bulk, customer_ids
from rapport_events.unit_of_work import SqlStore
from rapport_support.customers.models import (
    ErasedCustomer,
    SupportConsent,
    SupportCustomer,
    SupportHandle,
    SupportMergedCustomer,
)
from rapport_support.mentions.models import SupportMention
from rapport_support.products.models import SupportProduct
from rapport_support.tickets.models import SupportTicket


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


# Set-based reads and writes for runs of events: the shared kit.
_table = bulk.table_of
rows_where_in = bulk.rows_where
rows_where_pairs = bulk.rows_where
upsert = bulk.upsert
delete_pairs = bulk.delete_where


class CustomerStore(Protocol):
    """What the support context, the tickets and the mentions ask of the customers domain."""

    async def resolve(self, customer_id: str) -> str | None:
        """The id the customer's data lives under now, through merges; None if erased."""
        ...

    async def handle_owner(self, platform: str, handle_key: str) -> str | None:
        """The customer who claimed the handle (as the log said), if any."""
        ...

    async def context_rows(self, customer_id: str, mentions: int) -> ContextRows:
        """The customer's row and what hangs off it, newest first (`mentions` at most)."""
        ...

    # What the merge, the erasure and the export ask.

    def add(self, row: SupportCustomer | SupportMergedCustomer | ErasedCustomer) -> None: ...

    async def delete(self, row: SupportCustomer) -> None: ...

    async def get_customer(self, customer_id: str) -> SupportCustomer | None: ...

    async def is_erased(self, customer_id: str) -> bool: ...

    async def merged_into(self, merged_id: str) -> str | None:
        """The id `merged_id` was merged into, one link only (erased or not)."""
        ...

    async def aliases_of(self, customer_id: str) -> list[SupportMergedCustomer]:
        """The ids merged into the customer."""
        ...

    async def consents_of(self, customer_id: str) -> list[SupportConsent]:
        """By purpose and scope."""
        ...

    async def handles_of(self, customer_id: str) -> list[SupportHandle]:
        """By platform."""
        ...

    async def move_customer(self, from_id: str, to_id: str) -> None:
        """The handles and merged ids of `from_id` become `to_id`'s; its consents go (the
        survivor's own decisions stand)."""
        ...

    async def forget_customer(self, customer_id: str) -> None:
        """Delete the customer's row, handles, consents and merged ids."""
        ...


class SqlCustomerStore(SqlStore):
    async def resolve(self, customer_id: str) -> str | None:
        return await customer_ids.resolve(customer_id, self.survivors_of, self.erased_among)

    async def survivors_of(self, merged_ids: Iterable[str]) -> dict[str, str]:
        """merged id -> the id it was merged into, for those of `merged_ids` merged away."""
        rows = await rows_where_in(self.session, SupportMergedCustomer, "merged_id", merged_ids)
        return {row["merged_id"]: row["customer_id"] for row in rows}

    async def erased_among(self, customer_ids: Iterable[str]) -> set[str]:
        """Which of these ids were erased."""
        rows = await rows_where_in(self.session, ErasedCustomer, "customer_id", customer_ids)
        return {row["customer_id"] for row in rows}

    async def handle_owner(self, platform: str, handle_key: str) -> str | None:
        owner = await self.session.get(SupportHandle, (platform, handle_key))
        return owner.customer_id if owner is not None else None

    async def context_rows(self, customer_id: str, mentions: int) -> ContextRows:
        # A read on the hot path of every call a rep takes: Core selects on one connection,
        # rows and not ORM objects, which cost more to build than the queries take.
        await self.session.flush()  # rows the caller added in this transaction are seen
        connection = await self.session.connection()
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

    async def get_customer(self, customer_id: str) -> SupportCustomer | None:
        return await self.session.get(SupportCustomer, customer_id)

    async def is_erased(self, customer_id: str) -> bool:
        return await self.session.get(ErasedCustomer, customer_id) is not None

    async def merged_into(self, merged_id: str) -> str | None:
        alias = await self.session.get(SupportMergedCustomer, merged_id)
        return alias.customer_id if alias is not None else None

    async def aliases_of(self, customer_id: str) -> list[SupportMergedCustomer]:
        result = await self.session.exec(
            select(SupportMergedCustomer).where(SupportMergedCustomer.customer_id == customer_id)
        )
        return list(result.all())

    async def consents_of(self, customer_id: str) -> list[SupportConsent]:
        result = await self.session.exec(
            select(SupportConsent)
            .where(SupportConsent.customer_id == customer_id)
            .order_by(col(SupportConsent.purpose), col(SupportConsent.scope))
        )
        return list(result.all())

    async def handles_of(self, customer_id: str) -> list[SupportHandle]:
        result = await self.session.exec(
            select(SupportHandle)
            .where(SupportHandle.customer_id == customer_id)
            .order_by(col(SupportHandle.platform))
        )
        return list(result.all())

    async def move_customer(self, from_id: str, to_id: str) -> None:
        for table in (SupportHandle, SupportMergedCustomer):
            await self.session.exec(  # type: ignore[call-overload]
                update(table).where(col(table.customer_id) == from_id).values(customer_id=to_id)
            )
        await self.session.exec(  # type: ignore[call-overload]
            delete(SupportConsent).where(col(SupportConsent.customer_id) == from_id)
        )

    async def forget_customer(self, customer_id: str) -> None:
        for table in (SupportHandle, SupportConsent, SupportMergedCustomer, SupportCustomer):
            await self.session.exec(  # type: ignore[call-overload]
                delete(table).where(col(table.customer_id) == customer_id)
            )
