"""A run of events: the state it reads once (one `IN` query per table) and writes back once
(multi-row statements), so a projection's cost does not grow by a statement per event.

The consents and the slices projections share it; it reads and writes the tables of
several domains (tombstones, consents, slices, match keys, notices)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import bulk
from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.customers import store as customer_store
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.slices.models import MatchKey, SharedSlice

SliceKey = tuple[str, str, str]  # customer id, partner id, slice
Pair = tuple[str, str]  # customer id, partner id
CONSENT_COLUMNS = tuple(PartnerConsent.model_fields)


@dataclass
class Run:
    """What a run of events reads (one `IN` query per table) and changes in memory, in log
    order, until `write` puts it back with multi-row statements.

    Consents are detached `PartnerConsent` objects, so the rules below read as they would on
    the ORM, but nothing is flushed per event.
    """

    erased: set[str]
    consents: dict[Pair, PartnerConsent]
    slices: dict[SliceKey, dict[str, Any] | None]  # None: deleted in this run
    partners: dict[str, Partner] = field(default_factory=dict)
    stored_slices: set[SliceKey] = field(default_factory=set)
    changed_consents: set[Pair] = field(default_factory=set)
    changed_slices: set[SliceKey] = field(default_factory=set)
    match_keys: dict[Pair, list[tuple[str, str]]] = field(default_factory=dict)
    notices: list[Notification] = field(default_factory=list)

    def granted(self, customer_id: str, slice_name: str | None = None) -> list[PartnerConsent]:
        """The customer's granted consents (holding `slice_name`), by partner id."""
        if customer_id in self.erased:
            return []
        return [
            consent
            for (holder, _), consent in sorted(self.consents.items())
            if holder == customer_id
            and consent.granted
            and (slice_name is None or slice_name in consent.slices)
        ]

    def save(self, consent: PartnerConsent) -> None:
        pair = (consent.customer_id, consent.partner_id)
        self.consents[pair] = consent
        self.changed_consents.add(pair)

    def slice(self, consent: PartnerConsent, slice_name: str) -> dict[str, Any] | None:
        return self.slices.get((consent.customer_id, consent.partner_id, slice_name))

    def put_slice(self, consent: PartnerConsent, slice_name: str, data: dict[str, Any]) -> None:
        key = (consent.customer_id, consent.partner_id, slice_name)
        self.slices[key] = data
        self.changed_slices.add(key)

    def delete_slices(self, consent: PartnerConsent, slice_names: set[str] | None) -> None:
        """Delete some of the pair's slices (all when None), and its match keys with contact."""
        pair = (consent.customer_id, consent.partner_id)
        for key in [key for key in self.slices if key[:2] == pair]:
            if slice_names is None or key[2] in slice_names:
                self.slices[key] = None
                self.changed_slices.add(key)
        if slice_names is None or "contact" in slice_names:
            self.match_keys[pair] = []

    def set_match_keys(self, consent: PartnerConsent, contact: Mapping[str, Any]) -> None:
        keys = []
        if contact.get("email"):
            keys.append(("email", security.email_digest(str(contact["email"]))))
        if contact.get("phone"):
            keys.append(("phone", security.phone_digest(str(contact["phone"]))))
        self.match_keys[(consent.customer_id, consent.partner_id)] = sorted(set(keys))

    async def write(self, session: AsyncSession, now: datetime) -> None:
        """One statement per table and chunk: deletions, then upserts, then new notices."""
        gone = [
            k for k in self.changed_slices if self.slices[k] is None and k in self.stored_slices
        ]
        await bulk.delete_where(session, SharedSlice, ("customer_id", "partner_id", "slice"), gone)
        await bulk.delete_where(
            session, MatchKey, ("customer_id", "partner_id"), list(self.match_keys)
        )
        await bulk.upsert(
            session,
            PartnerConsent,
            [self.consents[pair].model_dump() for pair in sorted(self.changed_consents)],
            ("customer_id", "partner_id"),
            update=CONSENT_COLUMNS,
        )
        kept = sorted(k for k in self.changed_slices if self.slices[k] is not None)
        await bulk.upsert(
            session,
            SharedSlice,
            [_slice_row(key, self.slices[key] or {}, now) for key in kept],
            ("customer_id", "partner_id", "slice"),
            update=("data", "updated_at"),
        )
        keys = [
            {"customer_id": c, "partner_id": p, "kind": kind, "digest": digest}
            for (c, p), held in sorted(self.match_keys.items())
            for kind, digest in held
        ]
        await bulk.upsert(session, MatchKey, keys, ())
        await bulk.upsert(session, Notification, [n.model_dump() for n in self.notices], ())
        # Rows written with Core bypass the session: a merge or an erasure later in this
        # transaction must not read an ORM copy loaded before them.
        session.expire_all()


def _slice_row(key: SliceKey, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    customer_id, partner_id, slice_name = key
    return {
        "customer_id": customer_id,
        "partner_id": partner_id,
        "slice": slice_name,
        "data": data,
        "updated_at": now,
    }


async def load_run(
    session: AsyncSession,
    customer_ids: Iterable[str],
    *,
    pairs: Iterable[Pair] | None = None,
    slice_names: Iterable[str] | None = None,
) -> Run:
    """A run's state: tombstones, then the consents of `pairs` (else the customers' granted
    ones), then the slices they share (`slice_names` only, when given)."""
    ids = set(customer_ids)
    erased = await customer_store.erased_among(session, ids)
    # Locked: the run writes its consents back whole, so a fill committing between this
    # read and that write would be undone (left pending behind the fetch's lease).
    if pairs is not None:
        rows = await bulk.rows_where(
            session, PartnerConsent, ("customer_id", "partner_id"), pairs, lock=True
        )
    else:
        rows = await bulk.rows_where(
            session,
            PartnerConsent,
            ("customer_id",),
            ids - erased,
            col(PartnerConsent.granted).is_(True),
            lock=True,
        )
    consents = {(row["customer_id"], row["partner_id"]): PartnerConsent(**row) for row in rows}
    sharing = [pair for pair, c in consents.items() if c.granted or pairs is not None]
    conditions = []
    if slice_names is not None:
        conditions.append(col(SharedSlice.slice).in_(sorted(set(slice_names))))
    stored = await bulk.rows_where(
        session, SharedSlice, ("customer_id", "partner_id"), sharing, *conditions
    )
    held = {(row["customer_id"], row["partner_id"], row["slice"]): row["data"] for row in stored}
    return Run(erased, consents, dict(held), stored_slices=set(held))
