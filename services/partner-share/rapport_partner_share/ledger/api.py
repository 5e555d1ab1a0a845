"""The audit routes (admin): the disclosure ledger, the deletion notices sent to partners
(kept by `notices`), and a person's ledger entries, found after their erasure."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from rapport_events.limits import ID_PATTERN, SaneDatetime
from rapport_partner_share.deps import Limit, SettingsDep, UnitOfWorkDep, require_token
from rapport_partner_share.ledger import service
from rapport_partner_share.ledger.models import DisclosurePage, SubjectLedger
from rapport_partner_share.notices import service as notices
from rapport_partner_share.notices.models import NotificationList, NotificationPublic
from rapport_partner_share.security import SHA256_HEX

router = APIRouter(dependencies=[Depends(require_token)])


@router.get("/disclosures", response_model=DisclosurePage, tags=["audit"])
async def list_disclosures(
    uow: UnitOfWorkDep,
    partner_id: str | None = None,
    customer_id: str | None = None,
    since: SaneDatetime | None = None,
    until: SaneDatetime | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> DisclosurePage:
    """The audit ledger, newest first: who was shown what, when, why, under which consent."""
    disclosures, next_cursor = await service.ledger_page(
        uow,
        partner_id=partner_id,
        customer_id=customer_id,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    return DisclosurePage(disclosures=disclosures, next_cursor=next_cursor)


@router.get("/notifications", response_model=NotificationList, tags=["audit"])
async def list_notifications(
    uow: UnitOfWorkDep,
    partner_id: str | None = None,
    customer_id: str | None = None,
    pending: bool = False,
    limit: Limit = 100,
) -> NotificationList:
    """Deletion notices sent to partners, their delivery and acknowledgement."""
    notifications = await notices.list_notifications(
        uow, partner_id=partner_id, customer_id=customer_id, pending_only=pending, limit=limit
    )
    return NotificationList(notifications=[NotificationPublic.of(n) for n in notifications])


@router.get(
    "/privacy/disclosures",
    response_model=SubjectLedger,
    responses={
        400: {"description": "neither or both of customer_id and subject, or a foreign cursor"}
    },
    tags=["audit"],
)
async def subject_disclosures(
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    subject: Annotated[str | None, Query(pattern=SHA256_HEX.pattern)] = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> SubjectLedger:
    """Which partners received a person's data and acknowledged their erasure notice; kept
    after erasure under a keyed pseudonym (give the id, or the pseudonym itself)."""
    return await service.subject_ledger(
        uow,
        settings.ledger_key,
        customer_id=customer_id,
        subject=subject,
        cursor=cursor,
        limit=limit,
    )
