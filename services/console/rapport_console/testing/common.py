"""What the fakes of every service share: the ids of the faked world and its clock."""

from datetime import UTC, datetime, timedelta

CUSTOMER_ID = "3f0c6f0e-5a8e-4c57-9c3e-2b1f0f7d9a11"
SEGMENT_ID = "seg-vip"
CAMPAIGN_ID = "cmp-1"


def at(days_ago: int) -> str:
    """A time `days_ago` days before the faked world's now, as the services print it."""
    return (datetime(2026, 11, 30, 12, tzinfo=UTC) - timedelta(days=days_ago)).isoformat()
