"""The notices use cases against in-memory stores: what a partner reads and acknowledges,
which notices the notifier takes and leases, and what each delivery's outcome records."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from rapport_events.base import utcnow
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.errors import NotificationNotFound
from rapport_partner_share.notices import service
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.testing import FakePartnerShareUnitOfWork, add_partner

SINCE = datetime(2025, 1, 1, tzinfo=UTC)
LEASE = timedelta(minutes=1)


def a_partner(
    uow: FakePartnerShareUnitOfWork,
    partner_id: str = "acme",
    webhook_url: str | None = "https://acme.example/notices",
) -> Partner:
    return add_partner(uow, partner_id, webhook_url=webhook_url)


def a_notice(
    uow: FakePartnerShareUnitOfWork,
    partner: Partner,
    customer_id: str = "ada",
    at: datetime = SINCE,
    kind: str = "consent.revoked",
) -> Notification:
    consent = PartnerConsent(
        customer_id=customer_id,
        partner_id=partner.id,
        ref=f"ref-{customer_id}",
        slices=["contact"],
        changed_at=at,
    )
    notification = service.notice(partner, consent, kind, ["contact"], ["loyalty"], at)
    uow.rows.add(notification)
    return notification


async def record(
    uow: FakePartnerShareUnitOfWork,
    delivery: service.Delivery,
    status: int | None,
    error: str | None = None,
) -> None:
    """A delivery's outcome, with three attempts and a backoff from 10 s."""
    await service.record_delivery(
        uow,
        delivery,
        status=status,
        error=error,
        max_attempts=3,
        backoff=timedelta(seconds=10),
        max_backoff=timedelta(hours=1),
    )


class TestTheNotice:
    async def test_it_says_what_to_delete_and_is_due_at_once_with_a_webhook(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        notice = a_notice(uow, a_partner(uow))

        assert json.loads(notice.body) == {
            "id": notice.id,
            "type": "consent.revoked",
            "partner_id": "acme",
            "ref": "ref-ada",
            "delete_slices": ["contact"],
            "remaining_slices": ["loyalty"],
            "occurred_at": SINCE.isoformat(),
        }
        assert notice.next_attempt_at == SINCE and notice.customer_id == "ada"

    async def test_without_a_webhook_it_waits_to_be_read(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        notice = a_notice(uow, a_partner(uow, webhook_url=None))

        assert notice.next_attempt_at is None


class TestWhatAPartnerReads:
    async def test_its_own_notices_oldest_first_the_pending_ones_if_asked(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        acme, globex = a_partner(uow), a_partner(uow, "globex")
        later = a_notice(uow, acme, "bob", SINCE + timedelta(days=1))
        done = a_notice(uow, acme, "ada")
        done.acknowledged_at = SINCE
        a_notice(uow, globex)

        every = await service.partner_notifications(uow, acme, pending_only=False, limit=10)
        pending = await service.partner_notifications(uow, acme, pending_only=True, limit=10)
        one = await service.partner_notifications(uow, acme, pending_only=False, limit=1)

        assert every == [done, later]
        assert pending == [later]
        assert one == [done]

    async def test_operators_filter_by_partner_customer_and_pending(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        acme, globex = a_partner(uow), a_partner(uow, "globex")
        ada_acme = a_notice(uow, acme)
        ada_globex = a_notice(uow, globex, at=SINCE + timedelta(minutes=1))
        ada_globex.acknowledged_at = SINCE
        a_notice(uow, acme, "bob")

        async def listed(
            partner_id: str | None = None, customer_id: str | None = None, pending: bool = False
        ) -> list[Notification]:
            return await service.list_notifications(
                uow, partner_id=partner_id, customer_id=customer_id, pending_only=pending, limit=10
            )

        assert await listed(customer_id="ada") == [ada_acme, ada_globex]
        assert await listed(customer_id="ada", pending=True) == [ada_acme]
        assert await listed(partner_id="globex") == [ada_globex]


class TestAcknowledging:
    async def test_the_first_acknowledgement_wins(self, uow: FakePartnerShareUnitOfWork) -> None:
        partner = a_partner(uow)
        notice = a_notice(uow, partner)

        first = await service.acknowledge(uow, partner, notice.id)
        at = first.acknowledged_at
        again = await service.acknowledge(uow, partner, notice.id, via="webhook")

        assert at is not None and again.acknowledged_at == at
        assert again.acknowledged_via == "api"
        assert uow.outbox.events == []

    async def test_another_partners_notice_is_not_found(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        acme, globex = a_partner(uow), a_partner(uow, "globex")
        theirs = a_notice(uow, globex)

        for notification_id in (theirs.id, "no-such-notice"):
            with pytest.raises(NotificationNotFound):
                await service.acknowledge(uow, acme, notification_id)
        assert theirs.acknowledged_at is None


class TestClaimingDeliveries:
    async def test_due_notices_are_leased_with_what_to_send_and_how_to_sign(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        notice = a_notice(uow, partner)

        [delivery] = await service.claim_deliveries(uow, LEASE, limit=10)

        assert delivery.notification_id == notice.id
        assert delivery.url == "https://acme.example/notices"
        assert delivery.secret == "whsec_acme"
        assert delivery.body == notice.body.encode() and delivery.attempts == 0
        assert notice.next_attempt_at is not None
        assert notice.next_attempt_at - utcnow() == pytest.approx(LEASE, abs=timedelta(seconds=5))

    async def test_a_leased_notice_is_not_taken_again(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        a_notice(uow, a_partner(uow))

        assert len(await service.claim_deliveries(uow, LEASE, limit=10)) == 1
        assert await service.claim_deliveries(uow, LEASE, limit=10) == []

    async def test_acknowledged_future_and_webhookless_notices_are_not_due(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        acme, polls = a_partner(uow), a_partner(uow, "polls", webhook_url=None)
        a_notice(uow, acme, "ada").acknowledged_at = SINCE
        a_notice(uow, acme, "bob", at=utcnow() + timedelta(hours=1))
        a_notice(uow, polls).next_attempt_at = SINCE
        due = a_notice(uow, acme, "cy")

        claimed = await service.claim_deliveries(uow, LEASE, limit=10)

        assert [delivery.notification_id for delivery in claimed] == [due.id]

    async def test_the_oldest_due_go_first_up_to_the_limit(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        newer = a_notice(uow, partner, "ada", SINCE + timedelta(hours=1))
        older = a_notice(uow, partner, "bob", SINCE)

        claimed = await service.claim_deliveries(uow, LEASE, limit=1)

        assert [delivery.notification_id for delivery in claimed] == [older.id]
        assert newer.next_attempt_at == SINCE + timedelta(hours=1)


class TestRecordingADelivery:
    async def delivered(
        self, uow: FakePartnerShareUnitOfWork, status: int | None, error: str | None = None
    ) -> Notification:
        notice = a_notice(uow, a_partner(uow))
        [delivery] = await service.claim_deliveries(uow, LEASE, limit=1)
        await record(uow, delivery, status, error)
        return notice

    async def test_a_2xx_is_the_partners_acknowledgement(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        notice = await self.delivered(uow, 204)

        assert notice.attempts == 1 and notice.last_status == 204 and notice.last_error is None
        assert notice.delivered_at is not None and notice.next_attempt_at is None
        assert notice.acknowledged_at == notice.delivered_at
        assert notice.acknowledged_via == "webhook"

    async def test_a_delivery_after_an_api_acknowledgement_keeps_it(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        notice = a_notice(uow, partner)
        [delivery] = await service.claim_deliveries(uow, LEASE, limit=1)
        await service.acknowledge(uow, partner, notice.id)

        await record(uow, delivery, 200)

        assert notice.delivered_at is not None and notice.acknowledged_via == "api"

    async def test_a_failure_is_retried_later_each_time(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        notice = await self.delivered(uow, 503, "webhook answered 503")

        assert notice.attempts == 1 and notice.last_status == 503
        assert notice.last_error == "webhook answered 503"
        assert notice.delivered_at is None and notice.acknowledged_at is None
        assert notice.next_attempt_at is not None
        wait = notice.next_attempt_at - utcnow()
        assert wait == pytest.approx(timedelta(seconds=10), abs=timedelta(seconds=5))

    async def test_a_long_error_is_cut_to_what_the_column_holds(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        notice = await self.delivered(uow, None, "ConnectError: " + "x" * 1000)

        assert notice.last_status is None
        assert notice.last_error is not None and len(notice.last_error) == 500

    async def test_after_the_last_attempt_it_stays_pending_for_the_api(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        notice = a_notice(uow, a_partner(uow))
        notice.attempts = 2
        [delivery] = await service.claim_deliveries(uow, LEASE, limit=1)

        await record(uow, delivery, 500, "boom")

        assert notice.attempts == 3 and notice.next_attempt_at is None
        assert notice.acknowledged_at is None
        assert await service.claim_deliveries(uow, LEASE, limit=1) == []

    async def test_a_notice_gone_meanwhile_is_left_alone(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        notice = a_notice(uow, a_partner(uow))
        [delivery] = await service.claim_deliveries(uow, LEASE, limit=1)
        uow.rows.delete(notice)

        await record(uow, delivery, 200)

        assert uow.rows.all(Notification) == []
