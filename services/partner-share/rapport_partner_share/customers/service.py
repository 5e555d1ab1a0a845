"""Whether partner-share knows a customer, and since when."""

from rapport_partner_share.customers.models import KnownCustomer
from rapport_partner_share.errors import CustomerNotFound
from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork


async def get_known_customer(uow: PartnerShareUnitOfWork, customer_id: str) -> KnownCustomer:
    """One known customer, or CustomerNotFound."""
    customer = await uow.customers.get_known_customer(customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer
