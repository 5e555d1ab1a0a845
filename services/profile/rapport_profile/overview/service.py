"""The customer overview: one read of the parts of a customer that a 360 page shows at once.

A page that asked for each part on its own paid a request's fixed cost (routing, the token,
a span, a transaction) five times, and one of them carried up to 500 order events only to
be summed per month; here the parts come from one transaction and the sums from the
database.
"""

from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_profile.analytics import service as analytics_service
from rapport_profile.analytics import store as analytics_store
from rapport_profile.analytics.models import MonthlySpend
from rapport_profile.consents import service as consent_service
from rapport_profile.customers import service as customer_service
from rapport_profile.overview.models import CustomerOverview
from rapport_profile.timeline import service as timeline_service

CENT = Decimal("0.01")


async def overview(
    session: AsyncSession, customer_id: str, *, types: list[str], limit: int
) -> CustomerOverview:
    """The customer (CustomerNotFound if none), consents, metrics, the newest timeline page
    of `types` (all when empty) and spend per month."""
    customer = await customer_service.customer_detail(session, customer_id)
    # A merged customer's value and timeline are the survivor's, as their own routes say.
    owner = await timeline_service.known_owner(session, customer_id)
    return CustomerOverview(
        customer=customer,
        consents=await consent_service.consent_receipt(session, customer_id),
        metrics=await analytics_service.customer_metrics(session, owner),
        timeline=await timeline_service.owner_page(
            session, owner, types=types, limit=limit, cursor=None
        ),
        spend=await monthly_spend(session, owner),
    )


async def monthly_spend(session: AsyncSession, customer_id: str) -> list[MonthlySpend]:
    """Orders and revenue per calendar month (UTC), oldest first, summed by the database."""
    return [
        MonthlySpend(month=month, orders=orders, revenue=Decimal(str(revenue)).quantize(CENT))
        for month, orders, revenue in await analytics_store.spend_by_month(session, customer_id)
    ]
