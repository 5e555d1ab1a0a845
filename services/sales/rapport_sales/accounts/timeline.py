"""An account's timeline: its own activity and opportunities' stage changes (from sales),
and its contacts' timelines (from profile), newest first."""

from datetime import datetime
from typing import Any

from rapport_sales.accounts import service as accounts
from rapport_sales.accounts.models import AccountTimeline, TimelineItem
from rapport_sales.activities import service as activities
from rapport_sales.peers import ProfileClient
from rapport_sales.shared import SOURCE, aware
from rapport_sales.unit_of_work import SalesUnitOfWork


async def account_timeline(
    uow: SalesUnitOfWork, profile: ProfileClient, account_id: str, limit: int
) -> AccountTimeline:
    """The newest `limit` entries about the account and its contacts."""
    await accounts.get_account(uow, account_id)
    own = await activities.list_activities(
        uow, account_id=account_id, customer_id=None, kind=None, limit=limit, cursor=None
    )
    items = [
        TimelineItem(
            at=aware(item.occurred_at),
            source="sales",
            type=f"activity.{item.kind}",
            customer_id=item.customer_ids[0] if item.customer_ids else None,
            data=item.model_dump(mode="json"),
        )
        for item in own.items
    ]
    items += await _stage_changes(uow, account_id, limit)
    contacts = [contact.customer_id for contact in await accounts.contacts_of(uow, account_id)]
    timelines, complete = await profile.timelines(contacts, limit)
    for customer_id, entries in timelines.items():
        items += [_from_profile(customer_id, entry) for entry in entries if _foreign(entry)]
    items.sort(key=lambda item: aware(item.at), reverse=True)
    return AccountTimeline(items=items[:limit], complete=complete)


async def _stage_changes(uow: SalesUnitOfWork, account_id: str, limit: int) -> list[TimelineItem]:
    rows = await uow.opportunities.stage_changes_of_account(account_id, limit)
    return [
        TimelineItem(
            at=aware(change.changed_at),
            source="sales",
            type="opportunity.stage",
            customer_id=opportunity.customer_id,
            data={
                "opportunity_id": opportunity.id,
                "name": opportunity.name,
                "from_stage": change.from_stage,
                "to_stage": change.to_stage,
            },
        )
        for change, opportunity in rows
    ]


def _foreign(entry: dict[str, Any]) -> bool:
    """Sales' own events come from its tables, not twice through profile."""
    return entry.get("source") != SOURCE


def _from_profile(customer_id: str, entry: dict[str, Any]) -> TimelineItem:
    data = entry.get("data")
    return TimelineItem(
        at=aware(datetime.fromisoformat(str(entry.get("occurred_at")))),
        source="profile",
        type=str(entry.get("type", "")),
        customer_id=customer_id,
        data=data if isinstance(data, dict) else {},
    )
