"""Customer value: the one method every service uses for orders, revenue, RFM, lifetime
value, profit and tier.

Profile computes these from its orders and publishes them as customer.value.changed;
campaign and support store what it publishes. Every value depends only on the customer's
own orders, never on other customers, so a customer's value changes only when their
orders do and one event per change keeps every service current. The recency score alone
reads the clock: each service derives it from `last_order_at` with `recency_score`.
"""

from datetime import datetime
from decimal import Decimal

CENT = Decimal("0.01")
YEAR_SECONDS = 365.25 * 86400
TIERS = ("none", "bronze", "silver", "gold", "platinum")
# Lower bound of each tier on lifetime value; a customer without orders is "none".
TIER_LIFETIME_VALUE: tuple[tuple[str, int], ...] = (
    ("platinum", 5000),
    ("gold", 1000),
    ("silver", 250),
    ("bronze", 0),
)
# (score, at most this many days since the last order); older than the last: 1.
RECENCY_SCORE_DAYS: tuple[tuple[int, int], ...] = ((5, 30), (4, 90), (3, 180), (2, 365))
# (score, at least this many orders).
FREQUENCY_SCORE_ORDERS: tuple[tuple[int, int], ...] = ((5, 10), (4, 5), (3, 3), (2, 2), (1, 1))
# (score, at least this much revenue).
MONETARY_SCORE_REVENUE: tuple[tuple[int, int], ...] = (
    (5, 2000),
    (4, 1000),
    (3, 500),
    (2, 100),
    (1, 0),
)
# Years of future profit in the lifetime value: part of the method, so every service and
# every stored value agree.
HORIZON_YEARS = 3


def lifetime_value(profit: Decimal, first: datetime | None, last: datetime | None) -> Decimal:
    """Profit to date plus HORIZON_YEARS more at the customer's own yearly profit.

    The yearly profit is profit over the years between the first and the last order,
    counted as at least one year so one early order is not extrapolated wildly. It reads
    no clock, so a customer's value moves only with their orders.
    """
    if first is None or last is None:
        return Decimal("0.00")
    years = max((last - first).total_seconds() / YEAR_SECONDS, 1.0)
    per_year = Decimal(profit) / Decimal(str(years))
    return (Decimal(profit) + per_year * HORIZON_YEARS).quantize(CENT)


def tier(orders: int, value: Decimal) -> str:
    """The tier of a lifetime value (cut-offs in TIER_LIFETIME_VALUE); none without orders."""
    if not orders:
        return "none"
    for name, threshold in TIER_LIFETIME_VALUE:
        if value >= threshold:
            return name
    return "bronze"


def average_order_value(orders: int, revenue: Decimal) -> Decimal | None:
    """Revenue per order, to the cent; None without orders."""
    return (Decimal(revenue) / orders).quantize(CENT) if orders else None


def recency_score(last: datetime | None, now: datetime) -> int | None:
    """1-5 from the days since the last order (5: within 30 days); None without orders."""
    if last is None:
        return None
    days = (now - last).total_seconds() / 86400
    for score, within in RECENCY_SCORE_DAYS:
        if days <= within:
            return score
    return 1


def frequency_score(orders: int) -> int | None:
    """1-5 from the number of orders (5: ten or more); None without orders."""
    for score, at_least in FREQUENCY_SCORE_ORDERS:
        if orders >= at_least:
            return score
    return None


def monetary_score(orders: int, revenue: Decimal) -> int | None:
    """1-5 from the revenue (5: 2000 or more); None without orders."""
    if not orders:
        return None
    for score, at_least in MONETARY_SCORE_REVENUE:
        if revenue >= at_least:
            return score
    return 1
