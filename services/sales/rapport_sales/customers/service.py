"""The customers sales has learnt of from the log, as the other domains look them up."""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_sales.customers import store
from rapport_sales.customers.models import SalesCustomer
from rapport_sales.errors import NotFound


async def get_customer(session: AsyncSession, customer_id: str) -> SalesCustomer:
    """A customer sales has learnt of from the log, or NotFound."""
    customer = await store.get_customer(session, customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    return customer
