"""Events sales reacts to, by type: the frequent ones a run at a time (`@batch`)."""

from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.consumer import HandlerMap, batch
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import (
    AccountJoined,
    CampaignMessageClicked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
)
from rapport_sales import lifecycle
from rapport_sales.accounts import projection as account_projection
from rapport_sales.customers import projection as customer_projection
from rapport_sales.settings import Settings
from rapport_sales.unit_of_work import SqlSalesUnitOfWork


@batch
async def on_customers(
    events: list[CustomerRegistered | CustomerUpdated], session: AsyncSession
) -> None:
    """Sales learns who the customers are: names and addresses, to link contacts and e-mails."""
    await customer_projection.note_customers(SqlSalesUnitOfWork(session), events)


@batch
async def on_clicks(events: list[CampaignMessageClicked], session: AsyncSession) -> None:
    """The campaign a customer clicked last becomes the source of their next opportunity."""
    await customer_projection.note_clicks(SqlSalesUnitOfWork(session), events)


@batch
async def on_accounts_joined(events: list[AccountJoined], session: AsyncSession) -> None:
    """Segment group calls: the account exists and the customer is its contact."""
    await account_projection.join_accounts(SqlSalesUnitOfWork(session), events)


async def on_customer_merged(event: CustomerMerged, session: AsyncSession) -> None:
    """The duplicate's links move to the surviving customer."""
    await lifecycle.merge_customer(session, event)


async def on_customer_erased(
    event: CustomerErased, session: AsyncSession, settings: Settings
) -> None:
    """The person goes; accounts and opportunities stay without them."""
    uow = SqlSalesUnitOfWork(session)
    await lifecycle.erase_customer(uow, event.customer_id, Path(settings.documents_dir))
    # SQLite's write-ahead log still holds the deleted bytes until a checkpoint.
    checkpoint_after_commit(session)


HANDLERS: HandlerMap = {
    CustomerRegistered: [on_customers],
    CustomerUpdated: [on_customers],
    CampaignMessageClicked: [on_clicks],
    AccountJoined: [on_accounts_joined],
    CustomerMerged: [on_customer_merged],
    CustomerErased: [on_customer_erased],
}
