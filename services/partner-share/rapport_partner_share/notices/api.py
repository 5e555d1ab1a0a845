"""The partner API's deletion notices (under /partner/v1, X-API-Key): read them, and
acknowledge one. Operators list them under the audit routes (`ledger.api`)."""

from rapport_partner_share.deps import Limit, PartnerDep, UnitOfWorkDep, partner_api
from rapport_partner_share.errors import NotificationNotFound, missing
from rapport_partner_share.notices import service
from rapport_partner_share.notices.models import (
    AcknowledgementCreate,
    NotificationList,
    NotificationPublic,
)

partner_router = partner_api()


@partner_router.get("/notifications", response_model=NotificationList)
async def read_notifications(
    uow: UnitOfWorkDep, partner: PartnerDep, pending: bool = True, limit: Limit = 100
) -> NotificationList:
    """Deletion notices for you (the same ones your webhook receives)."""
    notifications = await service.partner_notifications(
        uow, partner, pending_only=pending, limit=limit
    )
    return NotificationList(notifications=[NotificationPublic.of(n) for n in notifications])


@partner_router.post(
    "/acknowledgements",
    response_model=NotificationPublic,
    responses={404: {"description": "you have no notice with this id"}},
)
async def acknowledge_notification(
    body: AcknowledgementCreate, uow: UnitOfWorkDep, partner: PartnerDep
) -> NotificationPublic:
    """Confirm that you deleted what a notice asked you to delete."""
    try:
        notification = await service.acknowledge(uow, partner, body.notification_id)
    except NotificationNotFound as not_found:
        raise missing("notification", not_found) from not_found
    return NotificationPublic.of(notification)
