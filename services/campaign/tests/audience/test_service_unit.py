"""The audience's use cases against in-memory stores: a member read with the segments they
are in, refused when campaign never heard of them, and a channel suppressed by an
unsubscribe (once, whatever consent was known before, leaving the other channels be)."""

from datetime import UTC, datetime

import pytest

from rapport_campaign.audience import service
from rapport_campaign.audience.models import AudienceMember, ConsentState
from rapport_campaign.errors import NotFound
from rapport_campaign.segments.models import SegmentMember
from rapport_campaign.testing import FakeCampaignUnitOfWork

REGISTERED = datetime(2026, 1, 5, tzinfo=UTC)


def a_member(uow: FakeCampaignUnitOfWork, customer_id: str, *segment_ids: str) -> AudienceMember:
    member = AudienceMember(
        customer_id=customer_id,
        email=f"{customer_id}@example.com",
        first_name=customer_id.title(),
        last_name="Doe",
        registered_at=REGISTERED,
    )
    uow.rows.add(member)
    uow.rows.extend(
        SegmentMember(segment_id=segment_id, customer_id=customer_id, entered_at=REGISTERED)
        for segment_id in segment_ids
    )
    return member


def a_consent(
    uow: FakeCampaignUnitOfWork, customer_id: str, channel: str, *, granted: bool = True
) -> ConsentState:
    consent = ConsentState(customer_id=customer_id, channel=channel, granted=granted, version=3)
    uow.rows.add(consent)
    return consent


class TestReadingAMember:
    async def test_the_member_comes_with_their_segments_sorted_by_id(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        ann = a_member(uow, "ann", "seg-vip", "seg-french")
        a_member(uow, "bob", "seg-buyers")

        member, segments = await service.get_member(uow, "ann")

        assert member is ann
        assert segments == ["seg-french", "seg-vip"]

    async def test_a_member_in_no_segment_has_an_empty_list(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_member(uow, "ann")

        _, segments = await service.get_member(uow, "ann")

        assert segments == []

    async def test_a_customer_campaign_never_heard_of_is_not_found(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_member(uow, "ann", "seg-vip")

        with pytest.raises(NotFound, match="no audience member bob"):
            await service.get_member(uow, "bob")


class TestSuppressingAChannel:
    async def test_a_granted_consent_is_withdrawn_at_once(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        consent = a_consent(uow, "ann", "email")

        assert await service.suppress_channel(uow, "ann", "email") is True

        assert uow.rows.get(ConsentState, "ann", "email") is consent
        assert (consent.granted, consent.source, consent.version) == (
            False,
            "unsubscribe_link",
            3,
        )
        assert consent.suppressed_at is not None
        assert not service.consented(consent)
        # Written before the caller re-reads consent (segments, journeys) in SQL.
        assert uow.flushes == 1

    async def test_with_no_consent_known_a_suppressed_one_is_recorded(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        assert await service.suppress_channel(uow, "ann", "sms") is True

        stored = uow.rows.get(ConsentState, "ann", "sms")
        assert stored is not None
        assert (stored.granted, stored.version, stored.source) == (False, 0, "unsubscribe_link")
        assert stored.suppressed_at is not None
        assert await uow.audience.withdrawn_customers("sms") == {"ann"}

    async def test_a_second_unsubscribe_changes_nothing_and_says_so(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_consent(uow, "ann", "email")
        await service.suppress_channel(uow, "ann", "email")
        first = uow.rows.get(ConsentState, "ann", "email")
        assert first is not None
        suppressed_at = first.suppressed_at

        assert await service.suppress_channel(uow, "ann", "email") is False

        assert first.suppressed_at == suppressed_at

    async def test_a_revoked_consent_is_suppressed_too_the_first_time(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        # Revoked in profile but never unsubscribed here: the unsubscribe is still news.
        consent = a_consent(uow, "ann", "email", granted=False)

        assert await service.suppress_channel(uow, "ann", "email") is True

        assert consent.suppressed_at is not None

    async def test_the_other_channels_keep_their_consent(self, uow: FakeCampaignUnitOfWork) -> None:
        a_consent(uow, "ann", "email")
        sms = a_consent(uow, "ann", "sms")
        bobs = a_consent(uow, "bob", "email")

        await service.suppress_channel(uow, "ann", "email")

        assert service.consented(sms) and service.consented(bobs)
        assert await uow.audience.withdrawn_customers("email") == {"ann"}


class TestConsented:
    def test_only_a_grant_not_unsubscribed_since_allows_marketing(self) -> None:
        granted = ConsentState(customer_id="ann", channel="email", granted=True)
        suppressed = ConsentState(
            customer_id="ann", channel="email", granted=True, suppressed_at=REGISTERED
        )
        revoked = ConsentState(customer_id="ann", channel="email", granted=False)

        assert service.consented(granted)
        assert not service.consented(suppressed)
        assert not service.consented(revoked)
        assert not service.consented(None)
