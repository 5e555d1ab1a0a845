"""Every query of the opportunities domain: pipelines and their stages, opportunities,
their contacts and their stage history."""

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_sales.opportunities.models import (
    SalesOpportunity,
    SalesOpportunityContact,
    SalesPipeline,
    SalesStage,
    SalesStageChange,
)
from rapport_sales.shared import newest_first


async def get_pipeline(session: AsyncSession, pipeline_id: str) -> SalesPipeline | None:
    return await session.get(SalesPipeline, pipeline_id)


async def pipeline_named(session: AsyncSession, name: str) -> SalesPipeline | None:
    result = await session.exec(select(SalesPipeline).where(SalesPipeline.name == name))
    return result.first()


async def all_pipelines(session: AsyncSession) -> list[SalesPipeline]:
    """Every pipeline, by name."""
    result = await session.exec(select(SalesPipeline).order_by(col(SalesPipeline.name)))
    return list(result.all())


async def stages_of_pipeline(session: AsyncSession, pipeline_id: str) -> list[SalesStage]:
    """The pipeline's stages in order (none for an unknown pipeline)."""
    result = await session.exec(
        select(SalesStage)
        .where(SalesStage.pipeline_id == pipeline_id)
        .order_by(col(SalesStage.position))
    )
    return list(result.all())


async def get_opportunity(session: AsyncSession, opportunity_id: str) -> SalesOpportunity | None:
    return await session.get(SalesOpportunity, opportunity_id)


@dataclass(frozen=True)
class OpportunityFilter:
    status: str | None = None
    owner: str | None = None
    account_id: str | None = None
    pipeline_id: str | None = None
    stage: str | None = None


async def list_opportunities(
    session: AsyncSession, where: OpportunityFilter, limit: int, cursor: str | None
) -> tuple[list[SalesOpportunity], str | None]:
    """Newest first; the second value is the cursor of the next page (None on the last)."""
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
    return await newest_first(session, query, SalesOpportunity, limit, cursor)


async def opportunities_of_customers(
    session: AsyncSession, customer_ids: Collection[str]
) -> list[SalesOpportunity]:
    """The opportunities whose primary contact is one of `customer_ids`."""
    result = await session.exec(
        select(SalesOpportunity).where(col(SalesOpportunity.customer_id).in_(customer_ids))
    )
    return list(result.all())


async def move_deals(session: AsyncSession, duplicate: str, survivor: str) -> None:
    """The duplicate's deals (as primary contact) become the survivor's."""
    await session.exec(  # type: ignore[call-overload]
        update(SalesOpportunity)
        .where(col(SalesOpportunity.customer_id) == duplicate)
        .values(customer_id=survivor)
    )


async def contact_ids_of(session: AsyncSession, opportunity_id: str) -> list[str]:
    """The customer ids of the opportunity's contacts, in no order."""
    result = await session.exec(
        select(SalesOpportunityContact.customer_id).where(
            SalesOpportunityContact.opportunity_id == opportunity_id
        )
    )
    return list(result.all())


async def unlink_customers(session: AsyncSession, customer_ids: Collection[str]) -> None:
    """`customer_ids` are no longer contacts of any opportunity."""
    await session.exec(  # type: ignore[call-overload]
        delete(SalesOpportunityContact).where(
            col(SalesOpportunityContact.customer_id).in_(customer_ids)
        )
    )


async def stage_history(session: AsyncSession, opportunity_id: str) -> list[SalesStageChange]:
    """The opportunity's stage changes, oldest first."""
    result = await session.exec(
        select(SalesStageChange)
        .where(SalesStageChange.opportunity_id == opportunity_id)
        .order_by(col(SalesStageChange.id))
    )
    return list(result.all())


async def stage_changes_of_account(
    session: AsyncSession, account_id: str, limit: int
) -> list[tuple[SalesStageChange, SalesOpportunity]]:
    """The newest `limit` stage changes of the account's opportunities, each with its deal."""
    result = await session.exec(
        select(SalesStageChange, SalesOpportunity)
        .join(SalesOpportunity, col(SalesOpportunity.id) == col(SalesStageChange.opportunity_id))
        .where(SalesOpportunity.account_id == account_id)
        .order_by(col(SalesStageChange.changed_at).desc(), col(SalesStageChange.id).desc())
        .limit(limit)
    )
    return list(result.all())
