"""The customer overview: one read of the parts of a customer that a 360 page shows at once.

A page that asked for each part on its own paid a request's fixed cost (routing, the token,
a span, a transaction) five times, and one of them carried up to 500 order events only to
be summed per month; here the parts come from one transaction, the customer is read once,
and the sums come from the database.
"""

from decimal import Decimal

from rapport_profile.analytics import service as analytics_service
from rapport_profile.analytics.models import MonthlySpend
from rapport_profile.consents import service as consent_service
from rapport_profile.customers import service as customer_service
from rapport_profile.errors import CustomerNotFound
from rapport_profile.overview.models import CustomerOverview
from rapport_profile.timeline import service as timeline_service
from rapport_profile.unit_of_work import ProfileUnitOfWork

CENT = Decimal("0.01")


async def overview(
    uow: ProfileUnitOfWork, customer_id: str, *, types: list[str], limit: int
) -> CustomerOverview:
    """The customer (CustomerNotFound if none), consents, metrics, the newest timeline page
    of `types` (all when empty) and spend per month."""
    row = await uow.customers.customer_row(customer_id)
    if row is None:
        raise CustomerNotFound(customer_id)
    # A merged customer's value and timeline are the survivor's, as their own routes say;
    # a customer merged into nobody answers for themselves.
    owner = row.id if row.merged_into is None else await timeline_service.owner_of(uow, row.id)
    return CustomerOverview(
        customer=await customer_service.detail_of(uow, row),
        consents=await consent_service.receipt_of(uow, row.id, row.consent_version),
        metrics=await analytics_service.metrics_of(uow, owner),
        timeline=await timeline_service.owner_timeline(
            uow, owner, types=types, limit=limit, cursor=None
        ),
        spend=await monthly_spend(uow, owner),
    )


async def monthly_spend(uow: ProfileUnitOfWork, customer_id: str) -> list[MonthlySpend]:
    """Orders and revenue per calendar month (UTC), oldest first, summed by the database."""
    return [
        MonthlySpend(month=month, orders=orders, revenue=Decimal(str(revenue)).quantize(CENT))
        for month, orders, revenue in await uow.analytics.spend_by_month(customer_id)
    ]
