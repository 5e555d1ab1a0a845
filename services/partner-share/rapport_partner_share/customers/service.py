"""Whether partner-share knows a customer, and since when."""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_partner_share.customers import store
from rapport_partner_share.customers.models import KnownCustomer
from rapport_partner_share.errors import CustomerNotFound


async def get_known_customer(session: AsyncSession, customer_id: str) -> KnownCustomer:
    """One known customer, or CustomerNotFound."""
    customer = await store.get_known_customer(session, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer
