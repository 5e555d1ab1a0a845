"""A merge narrows sharing without deletion notices, over random grants and merge results.

When profile merges two records of one person it may narrow or end the survivor's
partner_sharing grant (the most restrictive explicit choice wins); those changes carry
source `merge`. Sharing stops as for any revocation, but the person withdrew nothing the
partner received under the survivor's grant, so no `consent.revoked` notice goes out.
The rules run on an in-memory run of events, so this needs no database.
"""

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from rapport_events.types import ConsentGranted, ConsentRevoked
from rapport_partner_share import security
from rapport_partner_share.consents import projection
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.runs import Run
from rapport_partner_share.slices.rules import SLICES

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
CUSTOMER = "c-1"
slice_sets = st.frozensets(st.sampled_from(SLICES), min_size=1)


def partner() -> Partner:
    return Partner(
        id="p-1",
        name="Acme",
        industry="retail",
        slices=list(SLICES),
        purposes=["marketing"],
        webhook_secret="whsec_x",
        ref_key=security.new_ref_key(),
        rate_limit_per_second=10.0,
        rate_limit_burst=10,
        created_at=NOW,
    )


def run_with_grant(acme: Partner, held: frozenset[str]) -> Run:
    """The survivor shares `held` with the partner, at consent version 3."""
    consent = PartnerConsent(
        customer_id=CUSTOMER,
        partner_id=acme.id,
        ref=security.pseudonym(acme.ref_key, CUSTOMER),
        granted=True,
        slices=sorted(held),
        version=3,
        granted_at=NOW,
        changed_at=NOW,
    )
    stored = {(CUSTOMER, acme.id, name): {"n": 1} for name in held}
    return Run(
        erased=set(),
        consents={(CUSTOMER, acme.id): consent},
        slices=dict(stored),
        partners={acme.id: acme},
        stored_slices=set(stored),
    )


def change(kept: frozenset[str], source: str) -> ConsentGranted | ConsentRevoked:
    """What profile publishes when the survivor's grant narrows to `kept` (none: refused)."""
    fields = {
        "customer_id": CUSTOMER,
        "occurred_at": NOW,
        "purpose": "partner_sharing",
        "partner_id": "p-1",
        "source": source,
        "version": 4,
    }
    if kept:
        return ConsentGranted(**fields, slices=tuple(sorted(kept)))
    return ConsentRevoked(**fields)


def apply(run: Run, event: ConsentGranted | ConsentRevoked) -> None:
    if isinstance(event, ConsentGranted):
        projection._grant(run, event, NOW)
    else:
        projection._revoke(run, event, NOW)


def still_shared(run: Run) -> set[str]:
    return {key[2] for key, data in run.slices.items() if data is not None}


EXAMPLES = settings(max_examples=100, deadline=None, database=None)


class TestAMergeNarrowingTheSurvivorsGrant:
    @EXAMPLES
    @given(slice_sets, st.data())
    def test_stops_the_sharing_and_sends_no_deletion_notice(
        self, held: frozenset[str], data: st.DataObject
    ) -> None:
        kept = data.draw(st.frozensets(st.sampled_from(sorted(held))))
        acme = partner()
        run = run_with_grant(acme, held)

        apply(run, change(kept, "merge"))

        assert still_shared(run) == set(kept)
        assert run.consents[(CUSTOMER, acme.id)].granted == bool(kept)
        assert run.notices == []

    @EXAMPLES
    @given(slice_sets, st.data())
    def test_the_same_change_by_the_person_is_noticed(
        self, held: frozenset[str], data: st.DataObject
    ) -> None:
        kept = data.draw(st.frozensets(st.sampled_from(sorted(held))))
        acme = partner()
        run = run_with_grant(acme, held)

        apply(run, change(kept, "api"))

        assert still_shared(run) == set(kept)
        removed = held - kept
        assert [n.kind for n in run.notices] == (["consent.revoked"] if removed else [])
