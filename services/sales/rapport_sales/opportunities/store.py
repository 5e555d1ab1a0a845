"""Every query of the opportunities domain: pipelines and their stages, opportunities,
their contacts and their stage history.

`OpportunityStore` is what the use cases ask of it; `SqlOpportunityStore` answers on the
transaction's session, and `rapport_sales.testing` has the in-memory fake."""

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, update
from sqlmodel import col, select

from rapport_sales.opportunities.models import (
    SalesOpportunity,
    SalesOpportunityContact,
    SalesPipeline,
    SalesStage,
    SalesStageChange,
)
from rapport_sales.shared import SqlSalesStore

OpportunityRow = (
    SalesPipeline | SalesStage | SalesOpportunity | SalesOpportunityContact | SalesStageChange
)


@dataclass(frozen=True)
class OpportunityFilter:
    status: str | None = None
    owner: str | None = None
    account_id: str | None = None
    pipeline_id: str | None = None
    stage: str | None = None


class OpportunityStore(Protocol):
    def add(self, row: OpportunityRow) -> None: ...

    async def get_pipeline(self, pipeline_id: str) -> SalesPipeline | None: ...

    async def pipeline_named(self, name: str) -> SalesPipeline | None: ...

    async def all_pipelines(self) -> list[SalesPipeline]:
        """Every pipeline, by name."""
        ...

    async def stages_of_pipeline(self, pipeline_id: str) -> list[SalesStage]:
        """The pipeline's stages in order (none for an unknown pipeline)."""
        ...

    async def get_opportunity(self, opportunity_id: str) -> SalesOpportunity | None: ...

    async def list_opportunities(
        self, where: OpportunityFilter, limit: int, cursor: str | None
    ) -> tuple[list[SalesOpportunity], str | None]:
        """Newest first; the second value is the cursor of the next page (None on the last)."""
        ...

    async def opportunities_of_customers(
        self, customer_ids: Collection[str]
    ) -> list[SalesOpportunity]:
        """The opportunities whose primary contact is one of `customer_ids`."""
        ...

    async def move_deals(self, duplicate: str, survivor: str) -> None:
        """The duplicate's deals (as primary contact) become the survivor's."""
        ...

    async def contacts_of_customer(self, customer_id: str) -> list[SalesOpportunityContact]:
        """The customer's links to opportunities as a contact."""
        ...

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        """The duplicate's contact links become the survivor's (one per opportunity)."""
        ...

    async def contact_ids_of(self, opportunity_id: str) -> list[str]:
        """The customer ids of the opportunity's contacts, in no order."""
        ...

    async def unlink_customers(self, customer_ids: Collection[str]) -> None:
        """`customer_ids` are no longer contacts of any opportunity."""
        ...

    async def stage_history(self, opportunity_id: str) -> list[SalesStageChange]:
        """The opportunity's stage changes, oldest first."""
        ...

    async def stage_changes_of_account(
        self, account_id: str, limit: int
    ) -> list[tuple[SalesStageChange, SalesOpportunity]]:
        """The newest `limit` stage changes of the account's opportunities, each with its deal."""
        ...


class SqlOpportunityStore(SqlSalesStore):
    async def get_pipeline(self, pipeline_id: str) -> SalesPipeline | None:
        return await self.session.get(SalesPipeline, pipeline_id)

    async def pipeline_named(self, name: str) -> SalesPipeline | None:
        result = await self.session.exec(select(SalesPipeline).where(SalesPipeline.name == name))
        return result.first()

    async def all_pipelines(self) -> list[SalesPipeline]:
        result = await self.session.exec(select(SalesPipeline).order_by(col(SalesPipeline.name)))
        return list(result.all())

    async def stages_of_pipeline(self, pipeline_id: str) -> list[SalesStage]:
        result = await self.session.exec(
            select(SalesStage)
            .where(SalesStage.pipeline_id == pipeline_id)
            .order_by(col(SalesStage.position))
        )
        return list(result.all())

    async def get_opportunity(self, opportunity_id: str) -> SalesOpportunity | None:
        return await self.session.get(SalesOpportunity, opportunity_id)

    async def list_opportunities(
        self, where: OpportunityFilter, limit: int, cursor: str | None
    ) -> tuple[list[SalesOpportunity], str | None]:
        query = select(SalesOpportunity)
        for column, value in (
            (SalesOpportunity.status, where.status),
            (SalesOpportunity.owner, where.owner),
            (SalesOpportunity.account_id, where.account_id),
            (SalesOpportunity.pipeline_id, where.pipeline_id),
            (SalesOpportunity.stage, where.stage),
        ):
            if value is not None:
                query = query.where(column == value)
        return await self.newest_first(query, SalesOpportunity, limit, cursor)

    async def opportunities_of_customers(
        self, customer_ids: Collection[str]
    ) -> list[SalesOpportunity]:
        result = await self.session.exec(
            select(SalesOpportunity).where(col(SalesOpportunity.customer_id).in_(customer_ids))
        )
        return list(result.all())

    async def move_deals(self, duplicate: str, survivor: str) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            update(SalesOpportunity)
            .where(col(SalesOpportunity.customer_id) == duplicate)
            .values(customer_id=survivor)
        )

    async def contacts_of_customer(self, customer_id: str) -> list[SalesOpportunityContact]:
        result = await self.session.exec(
            select(SalesOpportunityContact).where(
                SalesOpportunityContact.customer_id == customer_id
            )
        )
        return list(result.all())

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        await self.move_links(SalesOpportunityContact, duplicate, survivor)

    async def contact_ids_of(self, opportunity_id: str) -> list[str]:
        result = await self.session.exec(
            select(SalesOpportunityContact.customer_id).where(
                SalesOpportunityContact.opportunity_id == opportunity_id
            )
        )
        return list(result.all())

    async def unlink_customers(self, customer_ids: Collection[str]) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            delete(SalesOpportunityContact).where(
                col(SalesOpportunityContact.customer_id).in_(customer_ids)
            )
        )

    async def stage_history(self, opportunity_id: str) -> list[SalesStageChange]:
        result = await self.session.exec(
            select(SalesStageChange)
            .where(SalesStageChange.opportunity_id == opportunity_id)
            .order_by(col(SalesStageChange.id))
        )
        return list(result.all())

    async def stage_changes_of_account(
        self, account_id: str, limit: int
    ) -> list[tuple[SalesStageChange, SalesOpportunity]]:
        result = await self.session.exec(
            select(SalesStageChange, SalesOpportunity)
            .join(
                SalesOpportunity, col(SalesOpportunity.id) == col(SalesStageChange.opportunity_id)
            )
            .where(SalesOpportunity.account_id == account_id)
            .order_by(col(SalesStageChange.changed_at).desc(), col(SalesStageChange.id).desc())
            .limit(limit)
        )
        return list(result.all())
