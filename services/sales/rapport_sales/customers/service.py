"""The customers sales has learnt of from the log, as the other domains look them up."""

from rapport_sales.customers.models import SalesCustomer
from rapport_sales.errors import NotFound
from rapport_sales.unit_of_work import SalesUnitOfWork


async def get_customer(uow: SalesUnitOfWork, customer_id: str) -> SalesCustomer:
    """A customer sales has learnt of from the log, or NotFound."""
    customer = await uow.customers.get_customer(customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    return customer
