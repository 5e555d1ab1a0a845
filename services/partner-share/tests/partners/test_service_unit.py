"""The partners use cases against in-memory stores: registration with a key shown once and
kept only as its hash, rotation and revocation, the end of a partnership, who a key belongs
to, and the purpose a request is made for."""

from datetime import UTC, datetime
from typing import Any

import pytest

from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.errors import ApiKeyNotFound, InvalidRequest, PartnerNotFound
from rapport_partner_share.ledger.models import Disclosure
from rapport_partner_share.partners import service
from rapport_partner_share.partners.models import Partner, PartnerApiKey, PartnerCreate
from rapport_partner_share.slices.models import MatchKey, SharedSlice
from rapport_partner_share.testing import FakePartnerShareUnitOfWork

SINCE = datetime(2025, 1, 1, tzinfo=UTC)
LATER = datetime(2099, 1, 1, tzinfo=UTC)


async def a_partner(uow: FakePartnerShareUnitOfWork, **fields: Any) -> service.RegisteredPartner:
    values: dict[str, Any] = {
        "name": "Acme Travel",
        "industry": "travel",
        "slices": ["contact", "loyalty"],
        "purposes": ["joint_offers", "analytics"],
    }
    values.update(fields)
    return await service.register_partner(
        uow, PartnerCreate(**values), default_rate=5.0, default_burst=10
    )


def shares_of(uow: FakePartnerShareUnitOfWork, partner_id: str, customer_id: str) -> None:
    """A consent, a shared slice and a match key of one customer for one partner."""
    uow.rows.extend(
        [
            PartnerConsent(
                customer_id=customer_id,
                partner_id=partner_id,
                ref=f"ref-{customer_id}",
                granted=True,
                slices=["contact"],
                changed_at=SINCE,
            ),
            SharedSlice(
                customer_id=customer_id,
                partner_id=partner_id,
                slice="contact",
                data={"email": "ada@example.com"},
                updated_at=SINCE,
            ),
            MatchKey(partner_id=partner_id, kind="email", digest="d" * 64, customer_id=customer_id),
        ]
    )


class TestRegisteringAPartner:
    async def test_the_key_is_shown_once_and_kept_only_as_its_hash(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        registered = await a_partner(uow)

        assert registered.api_key.startswith(security.API_KEY_PREFIX)
        [key] = uow.rows.all(PartnerApiKey)
        assert key.key_hash == security.hash_api_key(registered.api_key)
        assert key.hint == registered.api_key[: len(security.API_KEY_PREFIX) + 4]
        assert key.partner_id == registered.partner.id and key.revoked_at is None
        stored = [row.model_dump() for row in (*uow.rows.all(Partner), key)]
        assert registered.api_key not in str(stored)

    async def test_it_gets_its_own_webhook_secret_and_pseudonym_key(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        first, second = await a_partner(uow), await a_partner(uow)

        assert first.partner.webhook_secret.startswith(security.WEBHOOK_SECRET_PREFIX)
        assert first.partner.webhook_secret != second.partner.webhook_secret
        assert first.partner.ref_key != second.partner.ref_key
        assert len(bytes.fromhex(first.partner.ref_key)) == 32

    async def test_the_service_rate_limit_applies_unless_the_partner_has_its_own(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        default = await a_partner(uow)
        own = await a_partner(uow, rate_limit_per_second=50, rate_limit_burst=200)

        assert (default.partner.rate_limit_per_second, default.partner.rate_limit_burst) == (5, 10)
        assert (own.partner.rate_limit_per_second, own.partner.rate_limit_burst) == (50, 200)

    async def test_it_is_stored_flushed_and_publishes_nothing(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        registered = await a_partner(uow, webhook_url="https://acme.example/notices")

        assert uow.rows.get(Partner, registered.partner.id) is registered.partner
        assert registered.partner.webhook_url == "https://acme.example/notices"
        assert registered.partner.slices == ["contact", "loyalty"]
        assert uow.flushes == 1
        assert uow.outbox.events == []


class TestListingPartners:
    async def test_active_partners_oldest_first_with_their_keys(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        first, second, gone = await a_partner(uow), await a_partner(uow), await a_partner(uow)
        first.partner.created_at = LATER
        await service.rotate_api_key(uow, second.partner.id)
        await service.delete_partner(uow, gone.partner.id)

        listed = await service.list_partners(uow)

        assert [partner.id for partner, _ in listed] == [second.partner.id, first.partner.id]
        assert [len(keys) for _, keys in listed] == [2, 1]

    async def test_an_ended_partnership_is_found_only_when_asked_for(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        gone = await a_partner(uow)
        await service.delete_partner(uow, gone.partner.id)

        with pytest.raises(PartnerNotFound):
            await service.get_partner(uow, gone.partner.id)
        partner, keys = await service.get_partner(uow, gone.partner.id, active=False)
        assert partner.deleted_at is not None and keys[0].revoked_at is not None


class TestRotatingAKey:
    async def test_the_new_key_replaces_every_older_one_at_once(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        registered = await a_partner(uow)
        second, second_key = await service.rotate_api_key(uow, registered.partner.id)

        third, third_key = await service.rotate_api_key(uow, registered.partner.id)

        revoked = {key.id: key.revoked_at for key in uow.rows.all(PartnerApiKey)}
        assert revoked[registered.key.id] is not None
        assert revoked[second.id] == third.created_at
        assert revoked[third.id] is None
        assert await service.authenticate(uow, registered.api_key) is None
        assert await service.authenticate(uow, second_key) is None
        assert await service.authenticate(uow, third_key) is registered.partner

    async def test_an_unknown_or_ended_partner_gets_no_key(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        gone = await a_partner(uow)
        await service.delete_partner(uow, gone.partner.id)

        for partner_id in ("nobody", gone.partner.id):
            with pytest.raises(PartnerNotFound):
                await service.rotate_api_key(uow, partner_id)
        assert len(uow.rows.all(PartnerApiKey)) == 1


class TestRevokingAKey:
    async def test_the_key_is_refused_and_the_partners_other_keys_still_work(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        registered = await a_partner(uow)
        other = await a_partner(uow)

        revoked = await service.revoke_api_key(uow, registered.partner.id, registered.key.id)

        assert revoked.revoked_at is not None
        assert await service.authenticate(uow, registered.api_key) is None
        assert await service.authenticate(uow, other.api_key) is other.partner

    async def test_revoking_twice_keeps_the_first_time(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        registered = await a_partner(uow)
        first = await service.revoke_api_key(uow, registered.partner.id, registered.key.id)
        at = first.revoked_at = SINCE

        again = await service.revoke_api_key(uow, registered.partner.id, registered.key.id)

        assert again.revoked_at == at

    async def test_another_partners_key_is_not_found(self, uow: FakePartnerShareUnitOfWork) -> None:
        mine, theirs = await a_partner(uow), await a_partner(uow)

        with pytest.raises(ApiKeyNotFound):
            await service.revoke_api_key(uow, mine.partner.id, theirs.key.id)
        with pytest.raises(ApiKeyNotFound):
            await service.revoke_api_key(uow, mine.partner.id, "no-such-key")
        assert theirs.key.revoked_at is None

    async def test_an_unknown_partner_is_not_found(self, uow: FakePartnerShareUnitOfWork) -> None:
        registered = await a_partner(uow)

        with pytest.raises(PartnerNotFound):
            await service.revoke_api_key(uow, "nobody", registered.key.id)


class TestEndingAPartnership:
    async def test_keys_are_revoked_and_everything_shared_with_it_is_deleted(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        gone, kept = await a_partner(uow), await a_partner(uow)
        shares_of(uow, gone.partner.id, "ada")
        shares_of(uow, kept.partner.id, "ada")

        await service.delete_partner(uow, gone.partner.id)

        assert gone.partner.deleted_at is not None
        assert gone.key.revoked_at is not None
        for model in (PartnerConsent, SharedSlice, MatchKey):
            assert {row.partner_id for row in uow.rows.all(model)} == {kept.partner.id}
        assert await service.authenticate(uow, gone.api_key) is None
        assert await service.authenticate(uow, kept.api_key) is kept.partner

    async def test_the_ledger_stays(self, uow: FakePartnerShareUnitOfWork) -> None:
        gone = await a_partner(uow)
        entry = Disclosure(
            event_id="e-1",
            partner_id=gone.partner.id,
            partner_name="Acme Travel",
            partner_ref="ref-ada",
            slices=["contact"],
            fields=["contact.email"],
            purpose="joint_offers",
            request_id="r-1",
            disclosed_at=SINCE,
        )
        uow.rows.add(entry)

        await service.delete_partner(uow, gone.partner.id)

        assert uow.rows.all(Disclosure) == [entry]

    async def test_an_ended_partnership_cannot_end_again(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        gone = await a_partner(uow)
        await service.delete_partner(uow, gone.partner.id)
        ended_at = gone.partner.deleted_at

        with pytest.raises(PartnerNotFound):
            await service.delete_partner(uow, gone.partner.id)
        assert gone.partner.deleted_at == ended_at


class TestAuthenticating:
    async def test_only_a_well_formed_current_key_names_a_partner(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        registered = await a_partner(uow)

        assert await service.authenticate(uow, registered.api_key) is registered.partner
        assert await service.authenticate(uow, "") is None
        assert await service.authenticate(uow, registered.api_key + "x") is None
        assert await service.authenticate(uow, "rpk_" + "a" * 300) is None


class TestThePurposeOfARequest:
    async def test_it_defaults_to_the_first_registered_purpose(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = (await a_partner(uow)).partner

        assert service.resolve_purpose(partner, None) == "joint_offers"
        assert service.resolve_purpose(partner, "analytics") == "analytics"

    async def test_an_unregistered_purpose_is_refused(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = (await a_partner(uow)).partner

        with pytest.raises(InvalidRequest, match="joint_offers, analytics"):
            service.resolve_purpose(partner, "marketing")
