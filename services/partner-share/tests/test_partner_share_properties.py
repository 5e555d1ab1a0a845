"""Security properties of the partner API, over random partners, consents and keys.

Each property runs against one app on a real database (SQLite, then PostgreSQL) and a
real broker; every example registers fresh partners and customers, so examples do not
see each other's data.
"""

import hashlib
import string
import uuid
from dataclasses import dataclass
from decimal import Decimal

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from partner_share_testing import (
    AUTH,
    ProfileStub,
    apply,
    consent_of,
    everything_stored,
    granted,
    profile_customer,
    register_partner,
    revoked,
    wait_filled,
)

from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    LoyaltyPointsEarned,
    OrderCompleted,
    SegmentEntered,
)
from rapport_partner_share.security import email_digest, phone_digest
from rapport_partner_share.slices.rules import SLICE_FIELDS, SLICES

PROPERTY_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

slice_sets = st.sets(st.sampled_from(SLICES), min_size=1)
# Profile attributes partners must never see, whatever profile's record holds.
stray_attributes = st.dictionaries(
    st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
        lambda name: name not in {"id", "email", "phone"}
    ),
    st.text(string.ascii_letters, max_size=8),
    max_size=4,
)


@dataclass(frozen=True)
class Grant:
    slices: frozenset[str]


@dataclass(frozen=True)
class Revoke:
    slices: frozenset[str]  # empty: every slice


consent_changes = st.lists(
    st.one_of(
        st.builds(Grant, st.frozensets(st.sampled_from(SLICES), min_size=1)),
        st.builds(Revoke, st.frozensets(st.sampled_from(SLICES))),
    ),
    min_size=1,
    max_size=5,
)


def expected_slices(registered: set[str], changes: list[Grant | Revoke]) -> set[str]:
    """What the customer shares with the partner after the changes, by the consent rules."""
    shared: set[str] = set()
    for change in changes:
        if isinstance(change, Grant):
            shared = set(change.slices) & registered
        else:
            shared = shared - change.slices if change.slices else set()
    return shared


def consent_event(
    customer_id: str, partner_id: str, change: Grant | Revoke, version: int
) -> ConsentGranted | ConsentRevoked:
    if isinstance(change, Grant):
        return granted(customer_id, partner_id, sorted(change.slices), version)  # type: ignore[arg-type]
    return revoked(customer_id, partner_id, sorted(change.slices), version)  # type: ignore[arg-type]


def new_customer(profile_stub: ProfileStub, extra: dict[str, str] | None = None) -> str:
    customer_id = f"c-{uuid.uuid4().hex[:12]}"
    profile_stub.customers[customer_id] = profile_customer(customer_id, **(extra or {}))
    profile_stub.metrics[customer_id] = {"orders_count": 2, "revenue": "80.00"}
    return customer_id


async def feed_activity(app: FastAPI, customer_id: str) -> None:
    """An order, a segment entry and loyalty points: data for the event-fed slices."""
    await apply(
        app,
        OrderCompleted(
            customer_id=customer_id,
            order_id=f"o-{uuid.uuid4().hex[:8]}",
            items=[{"product_id": "p-1", "price": "25.00"}],  # type: ignore[list-item]
            revenue=Decimal("25.00"),
        ),
    )
    await apply(app, SegmentEntered(customer_id=customer_id, segment_id="s-1", segment_name="vip"))
    await apply(app, LoyaltyPointsEarned(customer_id=customer_id, program="miles", points=120))


async def settle(
    client: httpx.AsyncClient, customer_id: str, partner_id: str, expected: set[str]
) -> str | None:
    """The partner's ref once the consent is applied (and filled); None when nothing is shared."""
    if expected:
        return str((await wait_filled(client, customer_id, partner_id, timeout=30))["ref"])
    consent = await consent_of(client, customer_id, partner_id)
    return str(consent["ref"]) if consent else None


def assert_only_consented(reply: dict, expected: set[str]) -> None:
    assert set(reply["slices"]) == expected
    for slice_name, shown in reply["slices"].items():
        assert set(shown) <= SLICE_FIELDS[slice_name], (slice_name, shown)


class TestRepliesHoldOnlyConsentedAndRegisteredFields:
    @PROPERTY_SETTINGS
    @given(registered=slice_sets, changes=consent_changes, extra=stray_attributes)
    async def test_after_any_grants_and_revocations(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        profile_stub: ProfileStub,
        registered: set[str],
        changes: list[Grant | Revoke],
        extra: dict[str, str],
    ) -> None:
        partner = await register_partner(client, slices=sorted(registered))
        customer_id = new_customer(profile_stub, extra)
        for version, change in enumerate(changes, start=1):
            await apply(app, consent_event(customer_id, partner.id, change, version))
        expected = expected_slices(registered, changes)
        ref = await settle(client, customer_id, partner.id, expected)
        await feed_activity(app, customer_id)

        if not expected:
            if ref is not None:
                gone = await client.get(f"/partner/v1/customers/{ref}", headers=partner.headers)
                assert gone.status_code == 404, gone.text
            feed = await client.get("/partner/v1/customers", headers=partner.headers)
            assert feed.json()["customers"] == []
            return
        reply = await client.get(f"/partner/v1/customers/{ref}", headers=partner.headers)
        assert reply.status_code == 200, reply.text
        assert_only_consented(reply.json(), expected)
        feed = await client.get("/partner/v1/customers", headers=partner.headers)
        [listed] = feed.json()["customers"]
        assert listed["ref"] == ref
        assert_only_consented(listed, expected)
        ledger = await client.get(f"/customers/{customer_id}/disclosures", headers=AUTH)
        for disclosure in ledger.json()["disclosures"]:
            assert set(disclosure["slices"]) <= expected
            for field in disclosure["fields"]:
                slice_name, name = field.split(".", 1)
                assert slice_name in expected
                assert name in SLICE_FIELDS[slice_name] or name.endswith("_sha256")


class TestOnePartnerCannotReachAnothersRefs:
    @PROPERTY_SETTINGS
    @given(
        owner_slices=slice_sets,
        other_slices=slice_sets,
        shared_with_other=st.one_of(st.none(), slice_sets),
    )
    async def test_refs_do_not_work_across_partners(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        profile_stub: ProfileStub,
        owner_slices: set[str],
        other_slices: set[str],
        shared_with_other: set[str] | None,
    ) -> None:
        owner = await register_partner(client, slices=sorted(owner_slices))
        other = await register_partner(client, slices=sorted(other_slices))
        customer_id = new_customer(profile_stub)
        await apply(app, granted(customer_id, owner.id, sorted(owner_slices)))  # type: ignore[arg-type]
        owner_ref = await settle(client, customer_id, owner.id, owner_slices)
        other_expected = set(shared_with_other or ()) & other_slices
        if shared_with_other is not None:
            await apply(app, granted(customer_id, other.id, sorted(shared_with_other)))  # type: ignore[arg-type]
        other_ref = await settle(client, customer_id, other.id, other_expected)
        assert owner_ref is not None

        mine = await client.get(f"/partner/v1/customers/{owner_ref}", headers=owner.headers)
        theirs = await client.get(f"/partner/v1/customers/{owner_ref}", headers=other.headers)
        contributed = await client.post(
            "/partner/v1/events",
            headers=other.headers,
            json={"ref": owner_ref, "name": "Flight Booked", "properties": {}},
        )
        record = profile_stub.customers[customer_id]
        hashes = {
            "emails": [email_digest(record["email"])],
            "phones": [phone_digest(record["phone"])],
        }
        matched = await client.post("/partner/v1/match", headers=other.headers, json=hashes)
        feed = await client.get("/partner/v1/customers", headers=other.headers)

        assert mine.status_code == 200, mine.text
        assert theirs.status_code == 404, theirs.text
        assert contributed.status_code == 404, contributed.text
        assert matched.status_code == 200, matched.text
        matched_refs = {m["ref"] for m in matched.json()["matches"]}
        assert owner_ref not in matched_refs
        assert owner_ref not in {c["ref"] for c in feed.json()["customers"]}
        if "contact" in other_expected:
            assert matched_refs == {other_ref}
        else:
            assert matched_refs == set()  # a non-consenting customer looks unknown
        assert other_ref != owner_ref


@dataclass(frozen=True)
class Rotate:
    pass


@dataclass(frozen=True)
class RevokeKey:
    which: int  # index into the keys issued so far


key_operations = st.lists(
    st.one_of(st.just(Rotate()), st.builds(RevokeKey, st.integers(0, 5))), max_size=5
)
foreign_keys = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=60).map(
    lambda suffix: f"rpk_{suffix}"
)


class TestRevokedAndRotatedKeysAreRefused:
    @PROPERTY_SETTINGS
    @given(operations=key_operations, stranger=foreign_keys, delete_partner=st.booleans())
    async def test_only_live_keys_get_in_and_none_is_stored_in_clear(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        operations: list[Rotate | RevokeKey],
        stranger: str,
        delete_partner: bool,
    ) -> None:
        partner = await register_partner(client, slices=["contact"])
        keys = [(partner.body["keys"][0]["id"], partner.api_key)]
        live = {partner.api_key}
        for operation in operations:
            if isinstance(operation, Rotate):
                rotated = await client.post(f"/partners/{partner.id}/keys", headers=AUTH)
                assert rotated.status_code == 201, rotated.text
                keys.append((rotated.json()["id"], rotated.json()["api_key"]))
                live = {rotated.json()["api_key"]}
            else:
                key_id, api_key = keys[operation.which % len(keys)]
                gone = await client.delete(f"/partners/{partner.id}/keys/{key_id}", headers=AUTH)
                assert gone.status_code == 204, gone.text
                live.discard(api_key)
        if delete_partner:
            deleted = await client.delete(f"/partners/{partner.id}", headers=AUTH)
            assert deleted.status_code == 204, deleted.text
            live = set()

        for _, api_key in keys:
            reply = await client.get("/partner/v1/customers", headers={"X-API-Key": api_key})
            assert reply.status_code == (200 if api_key in live else 401), reply.text
        refused = await client.get("/partner/v1/customers", headers={"X-API-Key": stranger})
        assert refused.status_code == 401
        stored = await everything_stored(app)
        for _, api_key in keys:
            assert api_key not in stored
            assert api_key.removeprefix("rpk_") not in stored
            assert hashlib.sha256(api_key.encode()).hexdigest() in stored
