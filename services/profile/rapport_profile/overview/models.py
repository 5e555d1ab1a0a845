"""The customer overview: what the console's customer 360 shows of profile, in one answer."""

from pydantic import BaseModel

from rapport_profile.analytics.models import MetricsPublic, MonthlySpend
from rapport_profile.consents.models import ConsentReceipt
from rapport_profile.customers.models import CustomerDetail
from rapport_profile.timeline.models import TimelinePage


class CustomerOverview(BaseModel):
    """The customer, their consents, metrics, the first page of their timeline and their
    spend per month; each part as its own route answers it."""

    customer: CustomerDetail
    consents: ConsentReceipt
    metrics: MetricsPublic
    timeline: TimelinePage
    spend: list[MonthlySpend]
