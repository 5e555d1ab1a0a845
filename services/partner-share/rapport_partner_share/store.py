"""Every query partner-share makes.

The audit ledger (`Disclosure`) is only ever inserted and read here: there is no
update or delete of it, and the database refuses one (see migration 0002).
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import bulk
from rapport_partner_share.models import (
    Disclosure,
    DisclosureSubject,
    ErasedCustomer,
    KnownCustomer,
    MatchKey,
    Notification,
    Partner,
    PartnerApiKey,
    PartnerConsent,
    SharedSlice,
)

# --- set-based reads and writes for runs of events: the shared kit ------------------
CHUNK = bulk.CHUNK
_table = bulk.table_of
_chunks = bulk.chunks
_execute = bulk.execute
rows_where = bulk.rows_where
delete_where = bulk.delete_where
upsert = bulk.upsert


# --- known customers and tombstones -------------------------------------------------


async def get_known_customer(session: AsyncSession, customer_id: str) -> KnownCustomer | None:
    return await session.get(KnownCustomer, customer_id)


def add_known_customer(session: AsyncSession, customer: KnownCustomer) -> None:
    session.add(customer)


async def delete_known_customer(session: AsyncSession, customer_id: str) -> None:
    await session.exec(delete(KnownCustomer).where(col(KnownCustomer.customer_id) == customer_id))


async def get_tombstone(session: AsyncSession, customer_id: str) -> ErasedCustomer | None:
    return await session.get(ErasedCustomer, customer_id)


def add_tombstone(session: AsyncSession, tombstone: ErasedCustomer) -> None:
    session.add(tombstone)


# --- partners and keys -------------------------------------------------------------


def add(session: AsyncSession, row: Partner | PartnerApiKey | PartnerConsent | SharedSlice) -> None:
    session.add(row)


async def get_partner(session: AsyncSession, partner_id: str) -> Partner | None:
    return await session.get(Partner, partner_id)


async def partners_by_id(session: AsyncSession, partner_ids: Iterable[str]) -> dict[str, Partner]:
    wanted = sorted(set(partner_ids))
    if not wanted:
        return {}
    rows = await session.exec(select(Partner).where(col(Partner.id).in_(wanted)))
    return {partner.id: partner for partner in rows.all()}


async def list_partners(session: AsyncSession, include_deleted: bool = False) -> list[Partner]:
    query = select(Partner).order_by(col(Partner.created_at), col(Partner.id))
    if not include_deleted:
        query = query.where(col(Partner.deleted_at).is_(None))
    return list((await session.exec(query)).all())


async def list_api_keys(
    session: AsyncSession, partner_ids: Sequence[str]
) -> dict[str, list[PartnerApiKey]]:
    rows = await session.exec(
        select(PartnerApiKey)
        .where(col(PartnerApiKey.partner_id).in_(partner_ids))
        .order_by(col(PartnerApiKey.created_at), col(PartnerApiKey.id))
    )
    keys: dict[str, list[PartnerApiKey]] = {partner_id: [] for partner_id in partner_ids}
    for key in rows.all():
        keys[key.partner_id].append(key)
    return keys


async def get_api_key(session: AsyncSession, key_id: str) -> PartnerApiKey | None:
    return await session.get(PartnerApiKey, key_id)


async def partner_by_key_hash(session: AsyncSession, key_hash: str) -> Partner | None:
    """The active partner owning an unrevoked key with this hash."""
    result = await session.exec(
        select(Partner)
        .join(PartnerApiKey, col(PartnerApiKey.partner_id) == col(Partner.id))
        .where(
            col(PartnerApiKey.key_hash) == key_hash,
            col(PartnerApiKey.revoked_at).is_(None),
            col(Partner.deleted_at).is_(None),
        )
    )
    return result.first()


async def revoke_api_keys(session: AsyncSession, partner_id: str, now: datetime) -> None:
    await session.exec(
        update(PartnerApiKey)
        .where(col(PartnerApiKey.partner_id) == partner_id, col(PartnerApiKey.revoked_at).is_(None))
        .values(revoked_at=now)
    )


# --- consents ----------------------------------------------------------------------


async def get_consent(
    session: AsyncSession, customer_id: str, partner_id: str
) -> PartnerConsent | None:
    return await session.get(PartnerConsent, (customer_id, partner_id))


async def consents_of_customer(
    session: AsyncSession, customer_id: str, granted_only: bool = False
) -> list[PartnerConsent]:
    query = select(PartnerConsent).where(col(PartnerConsent.customer_id) == customer_id)
    if granted_only:
        query = query.where(col(PartnerConsent.granted).is_(True))
    return list((await session.exec(query.order_by(col(PartnerConsent.partner_id)))).all())


async def granted_consent_by_ref(
    session: AsyncSession, partner_id: str, ref: str
) -> PartnerConsent | None:
    result = await session.exec(
        select(PartnerConsent).where(
            col(PartnerConsent.partner_id) == partner_id,
            col(PartnerConsent.ref) == ref,
            col(PartnerConsent.granted).is_(True),
        )
    )
    return result.first()


async def granted_consents(
    session: AsyncSession, partner_id: str, customer_ids: Iterable[str]
) -> list[PartnerConsent]:
    result = await session.exec(
        select(PartnerConsent).where(
            col(PartnerConsent.partner_id) == partner_id,
            col(PartnerConsent.customer_id).in_(list(customer_ids)),
            col(PartnerConsent.granted).is_(True),
        )
    )
    return list(result.all())


async def changed_consents(
    session: AsyncSession,
    partner_id: str,
    *,
    since: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PartnerConsent]:
    """Granted consents of a partner in (changed_at, customer_id) order, for the feed."""
    query = select(PartnerConsent).where(
        col(PartnerConsent.partner_id) == partner_id, col(PartnerConsent.granted).is_(True)
    )
    if since is not None:
        query = query.where(col(PartnerConsent.changed_at) > since)
    if after is not None:
        changed_at, customer_id = after
        query = query.where(
            or_(
                col(PartnerConsent.changed_at) > changed_at,
                and_(
                    col(PartnerConsent.changed_at) == changed_at,
                    col(PartnerConsent.customer_id) > customer_id,
                ),
            )
        )
    query = query.order_by(col(PartnerConsent.changed_at), col(PartnerConsent.customer_id))
    return list((await session.exec(query.limit(limit))).all())


async def due_fills(session: AsyncSession, now: datetime, limit: int) -> list[PartnerConsent]:
    """Consents waiting for profile's data, locked: another filler skips them (SKIP LOCKED)."""
    result = await session.exec(
        select(PartnerConsent)
        .where(
            col(PartnerConsent.fill_pending).is_(True),
            col(PartnerConsent.granted).is_(True),
            or_(
                col(PartnerConsent.fill_next_at).is_(None), col(PartnerConsent.fill_next_at) <= now
            ),
        )
        .order_by(
            col(PartnerConsent.fill_next_at),
            col(PartnerConsent.customer_id),
            col(PartnerConsent.partner_id),
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(result.all())


async def delete_consents(
    session: AsyncSession, *, customer_id: str | None = None, partner_id: str | None = None
) -> None:
    await session.exec(
        delete(PartnerConsent).where(*_owner(PartnerConsent, customer_id, partner_id))
    )


def _owner(
    table: type[PartnerConsent] | type[SharedSlice] | type[MatchKey],
    customer_id: str | None,
    partner_id: str | None,
) -> list:  # type: ignore[type-arg]
    if customer_id is None and partner_id is None:
        raise ValueError("a bulk delete needs a customer or a partner")
    conditions = []
    if customer_id is not None:
        conditions.append(col(table.customer_id) == customer_id)
    if partner_id is not None:
        conditions.append(col(table.partner_id) == partner_id)
    return conditions


# --- shared slices and match keys --------------------------------------------------


async def get_slice(
    session: AsyncSession, customer_id: str, partner_id: str, slice_name: str
) -> SharedSlice | None:
    return await session.get(SharedSlice, (customer_id, partner_id, slice_name))


async def slices_of(
    session: AsyncSession, customer_id: str, partner_id: str | None = None
) -> list[SharedSlice]:
    query = select(SharedSlice).where(col(SharedSlice.customer_id) == customer_id)
    if partner_id is not None:
        query = query.where(col(SharedSlice.partner_id) == partner_id)
    query = query.order_by(col(SharedSlice.partner_id), col(SharedSlice.slice))
    return list((await session.exec(query)).all())


async def slices_of_many(
    session: AsyncSession,
    partner_id: str,
    customer_ids: Iterable[str],
    slice_name: str | None = None,
) -> list[SharedSlice]:
    query = select(SharedSlice).where(
        col(SharedSlice.partner_id) == partner_id,
        col(SharedSlice.customer_id).in_(list(customer_ids)),
    )
    if slice_name is not None:
        query = query.where(col(SharedSlice.slice) == slice_name)
    return list((await session.exec(query)).all())


async def delete_slices(
    session: AsyncSession,
    *,
    customer_id: str | None = None,
    partner_id: str | None = None,
    slice_names: Iterable[str] | None = None,
) -> None:
    query = delete(SharedSlice).where(*_owner(SharedSlice, customer_id, partner_id))
    if slice_names is not None:
        query = query.where(col(SharedSlice.slice).in_(list(slice_names)))
    await session.exec(query)


async def replace_match_keys(
    session: AsyncSession, customer_id: str, partner_id: str, keys: Iterable[tuple[str, str]]
) -> None:
    await delete_match_keys(session, customer_id=customer_id, partner_id=partner_id)
    for kind, digest in set(keys):
        session.add(
            MatchKey(partner_id=partner_id, kind=kind, digest=digest, customer_id=customer_id)
        )


async def delete_match_keys(
    session: AsyncSession, *, customer_id: str | None = None, partner_id: str | None = None
) -> None:
    await session.exec(delete(MatchKey).where(*_owner(MatchKey, customer_id, partner_id)))


async def match_keys_of(session: AsyncSession, customer_id: str) -> list[MatchKey]:
    result = await session.exec(
        select(MatchKey)
        .where(col(MatchKey.customer_id) == customer_id)
        .order_by(col(MatchKey.partner_id), col(MatchKey.kind))
    )
    return list(result.all())


async def find_matches(
    session: AsyncSession, partner_id: str, kind: str, digests: Sequence[str]
) -> list[MatchKey]:
    if not digests:
        return []
    result = await session.exec(
        select(MatchKey).where(
            col(MatchKey.partner_id) == partner_id,
            col(MatchKey.kind) == kind,
            col(MatchKey.digest).in_(list(digests)),
        )
    )
    return list(result.all())


# --- the audit ledger (insert and read only) ---------------------------------------


async def append_disclosure(
    session: AsyncSession, disclosure: Disclosure, customer_id: str
) -> Disclosure:
    session.add(disclosure)
    await session.flush()
    assert disclosure.id is not None
    session.add(DisclosureSubject(disclosure_id=disclosure.id, customer_id=customer_id))
    return disclosure


async def list_disclosures(
    session: AsyncSession,
    *,
    partner_id: str | None,
    customer_id: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[tuple[Disclosure, str | None]]:
    """Ledger entries, newest first, with the customer they were about (None once erased)."""
    query = select(Disclosure, DisclosureSubject.customer_id).outerjoin(
        DisclosureSubject, col(DisclosureSubject.disclosure_id) == col(Disclosure.id)
    )
    if partner_id is not None:
        query = query.where(col(Disclosure.partner_id) == partner_id)
    if customer_id is not None:
        query = query.where(col(DisclosureSubject.customer_id) == customer_id)
    if since is not None:
        query = query.where(col(Disclosure.disclosed_at) >= since)
    if until is not None:
        query = query.where(col(Disclosure.disclosed_at) < until)
    if before_id is not None:
        query = query.where(col(Disclosure.id) < before_id)
    query = query.order_by(col(Disclosure.id).desc()).limit(limit)
    return [(row[0], row[1]) for row in (await session.exec(query)).all()]


async def disclosures_of_subject(
    session: AsyncSession, subject: str, *, before_id: int | None, limit: int
) -> list[Disclosure]:
    """Ledger entries under one subject pseudonym, newest first."""
    query = select(Disclosure).where(col(Disclosure.subject) == subject)
    if before_id is not None:
        query = query.where(col(Disclosure.id) < before_id)
    query = query.order_by(col(Disclosure.id).desc()).limit(limit)
    return list((await session.exec(query)).all())


async def erasure_notices(
    session: AsyncSession, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Notification]:
    """The customer.erased notice of each (partner id, partner ref) that has one."""
    pairs = set(pairs)
    if not pairs:
        return {}
    query = select(Notification).where(
        col(Notification.kind) == "customer.erased",
        col(Notification.partner_id).in_(sorted({partner for partner, _ in pairs})),
        col(Notification.partner_ref).in_(sorted({ref for _, ref in pairs})),
    )
    found: dict[tuple[str, str], Notification] = {}
    for notice in (await session.exec(query.order_by(col(Notification.created_at)))).all():
        if (notice.partner_id, notice.partner_ref) in pairs:
            found.setdefault((notice.partner_id, notice.partner_ref), notice)
    return found


async def count_disclosures(session: AsyncSession) -> int:
    return int((await session.exec(select(func.count()).select_from(Disclosure))).one())


async def forget_disclosure_subject(session: AsyncSession, customer_id: str) -> None:
    """Unlink the ledger from an erased customer; the entries themselves stay."""
    await session.exec(
        delete(DisclosureSubject).where(col(DisclosureSubject.customer_id) == customer_id)
    )


async def move_disclosure_subject(session: AsyncSession, merged_id: str, surviving_id: str) -> None:
    await session.exec(
        update(DisclosureSubject)
        .where(col(DisclosureSubject.customer_id) == merged_id)
        .values(customer_id=surviving_id)
    )


# --- notifications -----------------------------------------------------------------


def add_notification(session: AsyncSession, notification: Notification) -> None:
    session.add(notification)


async def get_notification(session: AsyncSession, notification_id: str) -> Notification | None:
    return await session.get(Notification, notification_id)


async def list_notifications(
    session: AsyncSession,
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
    return list((await session.exec(query)).all())


async def due_notifications(
    session: AsyncSession, now: datetime, limit: int
) -> list[tuple[Notification, Partner]]:
    """Unacknowledged notices whose next delivery attempt is due, with their partner."""
    result = await session.exec(
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
    session: AsyncSession, notification_id: str, seen_next_at: datetime, lease_until: datetime
) -> bool:
    """Take a due notice for one delivery attempt; False when another worker took it first."""
    result = await session.exec(
        update(Notification)
        .where(
            col(Notification.id) == notification_id,
            col(Notification.next_attempt_at) == seen_next_at,
        )
        .values(next_attempt_at=lease_until)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def anonymise_notifications(session: AsyncSession, customer_id: str) -> None:
    await session.exec(
        update(Notification)
        .where(col(Notification.customer_id) == customer_id)
        .values(customer_id=None)
    )


async def move_notifications(session: AsyncSession, merged_id: str, surviving_id: str) -> None:
    await session.exec(
        update(Notification)
        .where(col(Notification.customer_id) == merged_id)
        .values(customer_id=surviving_id)
    )
