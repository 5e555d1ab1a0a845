"""Every query of the notices domain: queueing, listing, claiming and re-keying deletion
notices.

The use cases, the merge, the erasure and the export ask them of a `NoticeStore`
(`SqlNoticeStore` here, a fake in `rapport_partner_share.testing`).
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy import update
from sqlmodel import col, select

from rapport_events.unit_of_work import SqlStore
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner


class NoticeStore(Protocol):
    def add(self, row: Notification) -> None: ...

    async def get_notification(self, notification_id: str) -> Notification | None: ...

    async def list_notifications(
        self,
        *,
        partner_id: str | None = None,
        customer_id: str | None = None,
        pending_only: bool = False,
        limit: int = 100,
    ) -> list[Notification]:
        """Notices, oldest first."""
        ...

    async def erasure_notices(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Notification]:
        """The customer.erased notice of each (partner id, partner ref) that has one."""
        ...

    async def due_notifications(
        self, now: datetime, limit: int
    ) -> list[tuple[Notification, Partner]]:
        """Unacknowledged notices whose next delivery attempt is due, with their partner."""
        ...

    async def claim_notification(
        self, notification_id: str, seen_next_at: datetime, lease_until: datetime
    ) -> bool:
        """Take a due notice for one delivery attempt; False when another worker took it first."""
        ...

    # What the merge and the erasure ask.

    async def move_notifications(self, merged_id: str, surviving_id: str) -> None:
        """The notices about `merged_id` are about `surviving_id` now."""
        ...

    async def anonymise_notifications(self, customer_id: str) -> None:
        """The notices about the customer keep no customer id."""
        ...


class SqlNoticeStore(SqlStore):
    async def get_notification(self, notification_id: str) -> Notification | None:
        return await self.session.get(Notification, notification_id)

    async def list_notifications(
        self,
        *,
        partner_id: str | None = None,
        customer_id: str | None = None,
        pending_only: bool = False,
        limit: int = 100,
    ) -> list[Notification]:
        query = select(Notification)
        if partner_id is not None:
            query = query.where(col(Notification.partner_id) == partner_id)
        if customer_id is not None:
            query = query.where(col(Notification.customer_id) == customer_id)
        if pending_only:
            query = query.where(col(Notification.acknowledged_at).is_(None))
        query = query.order_by(col(Notification.created_at), col(Notification.id)).limit(limit)
        return list((await self.session.exec(query)).all())

    async def erasure_notices(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Notification]:
        pairs = set(pairs)
        if not pairs:
            return {}
        query = select(Notification).where(
            col(Notification.kind) == "customer.erased",
            col(Notification.partner_id).in_(sorted({partner for partner, _ in pairs})),
            col(Notification.partner_ref).in_(sorted({ref for _, ref in pairs})),
        )
        found: dict[tuple[str, str], Notification] = {}
        notices = await self.session.exec(query.order_by(col(Notification.created_at)))
        for notice in notices.all():
            if (notice.partner_id, notice.partner_ref) in pairs:
                found.setdefault((notice.partner_id, notice.partner_ref), notice)
        return found

    async def due_notifications(
        self, now: datetime, limit: int
    ) -> list[tuple[Notification, Partner]]:
        result = await self.session.exec(
            select(Notification, Partner)
            .join(Partner, col(Partner.id) == col(Notification.partner_id))
            .where(
                col(Notification.acknowledged_at).is_(None),
                col(Notification.next_attempt_at).is_not(None),
                col(Notification.next_attempt_at) <= now,
                col(Partner.webhook_url).is_not(None),
            )
            .order_by(col(Notification.next_attempt_at), col(Notification.id))
            .limit(limit)
            # Another notifier's notices are skipped, not waited for (PostgreSQL).
            .with_for_update(of=Notification, skip_locked=True)
        )
        return [(row[0], row[1]) for row in result.all()]

    async def claim_notification(
        self, notification_id: str, seen_next_at: datetime, lease_until: datetime
    ) -> bool:
        result = await self.session.exec(
            update(Notification)
            .where(
                col(Notification.id) == notification_id,
                col(Notification.next_attempt_at) == seen_next_at,
            )
            .values(next_attempt_at=lease_until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def move_notifications(self, merged_id: str, surviving_id: str) -> None:
        await self.session.exec(
            update(Notification)
            .where(col(Notification.customer_id) == merged_id)
            .values(customer_id=surviving_id)
        )

    async def anonymise_notifications(self, customer_id: str) -> None:
        await self.session.exec(
            update(Notification)
            .where(col(Notification.customer_id) == customer_id)
            .values(customer_id=None)
        )
