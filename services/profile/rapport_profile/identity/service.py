"""Identity resolution: who an id belongs to now, merges and unmerges of customers.

Merging and unmerging take a `ProfileUnitOfWork` (tracking passes its own); what the
projections and tests call on their own session (`resolve`, `resolve_all`, `survivor_of`,
`merge_customers`, `unmerge_customers`) builds the SQL one, or asks the store, on it."""

from collections.abc import Collection
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import customer_ids as customer_ids_kit
from rapport_events.base import utcnow
from rapport_events.types import (
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
)
from rapport_profile.analytics import projection as analytics_projection
from rapport_profile.consents import service as consent_service
from rapport_profile.customers import service as customer_service
from rapport_profile.customers.models import Customer, event_fields
from rapport_profile.errors import Conflict, CustomerNotFound, InvalidRequest
from rapport_profile.identity import store
from rapport_profile.identity.models import Identity, Merge
from rapport_profile.unit_of_work import ProfileUnitOfWork, SqlProfileUnitOfWork

ALIAS = store.ALIAS


async def resolve(session: AsyncSession, customer_id: str) -> str | None:
    """The id that owns `customer_id` now, through merges; None when erased."""
    return await store.SqlIdentityStore(session).resolve(customer_id)


async def resolve_all(
    session: AsyncSession, customer_ids: Collection[str]
) -> dict[str, str | None]:
    """Who each incoming event's customer id belongs to now; None when it was erased."""
    lookups = store.RunLookups(session, ALIAS)
    return await customer_ids_kit.resolve_all(
        customer_ids, lookups.survivors_of, lookups.erased_among
    )


async def survivor_of(session: AsyncSession, customer_id: str) -> str:
    """The id that owns `customer_id` now, through merges, erased or not.

    For the callers that must name that owner even when erased: a tracking call about an
    erased customer is recognised (and dropped) by it, and the holder of an e-mail address
    is named by it.
    """
    return await store.SqlIdentityStore(session).survivor_of(customer_id)


async def merge_customers(
    session: AsyncSession,
    survivor_id: str,
    merged_id: str,
    *,
    reason: str,
    actor: str | None,
    topic: str,
) -> Merge:
    """`merge` on the caller's session."""
    uow = SqlProfileUnitOfWork(session, topic)
    return await merge(uow, survivor_id, merged_id, reason=reason, actor=actor)


async def merge(
    uow: ProfileUnitOfWork, survivor_id: str, merged_id: str, *, reason: str, actor: str | None
) -> Merge:
    """Fold `merged_id` into `survivor_id`: rows, identities and metrics move; consents
    resolve to the most restrictive; customer.merged is published."""
    if survivor_id == merged_id:
        raise InvalidRequest("a customer cannot be merged into itself")
    survivor = customer_service.changeable(
        await uow.customers.lock_customer(survivor_id), survivor_id
    )
    merged = await uow.customers.lock_customer(merged_id)
    if merged is None:
        if await uow.identity.resolve(merged_id) != merged_id or not await _known_id(
            uow, merged_id
        ):
            raise CustomerNotFound(merged_id)
    elif merged.status != "active":
        raise Conflict(f"customer {merged_id} was already merged into {merged.merged_into}")
    snapshot = await _snapshot(uow, survivor.id, merged_id)
    await uow.identity.repoint_identities(merged_id, survivor.id)
    uow.identity.add(Identity(kind=ALIAS, value=merged_id, customer_id=survivor.id))
    await uow.identity.move_rows(merged_id, survivor.id)
    before = survivor.consent_version
    await consent_service.restrict_consents(uow, survivor, merged_id, actor)
    # The versions the merge gave its consent changes, so an unmerge undoes only those.
    snapshot["survivor_consent_versions"] = [before, survivor.consent_version]
    if merged is not None:
        await _retire(uow, survivor, merged)
    await uow.flush()
    await analytics_projection.refresh_values(uow, [survivor.id])
    await uow.analytics.delete_metrics(merged_id)
    merge = Merge(
        customer_id=survivor.id,
        merged_customer_id=merged_id,
        reason=reason,
        actor=actor,
        snapshot=snapshot,
    )
    uow.identity.add(merge)
    await uow.outbox.publish(
        [
            CustomerMerged(
                customer_id=survivor.id,
                merged_customer_id=merged_id,
                reason=reason,  # type: ignore[arg-type]
                actor=actor,
            )
        ]
    )
    return merge


async def _snapshot(uow: ProfileUnitOfWork, survivor_id: str, merged_id: str) -> dict[str, Any]:
    """What an unmerge needs to undo the merge: the ids whose rows move (the merged id and
    the ids merged into it before), its identities, and both records' consents."""
    identities = await uow.identity.identities_of(merged_id)
    return {
        "subjects": [merged_id] + [i.value for i in identities if i.kind == ALIAS],
        "identities": [[i.kind, i.value] for i in identities],
        "survivor_consents": [
            consent_service._consent_state(c) for c in await uow.consents.consents_of(survivor_id)
        ],
        "merged_consents": [
            consent_service._consent_state(c) for c in await uow.consents.consents_of(merged_id)
        ],
    }


async def _retire(uow: ProfileUnitOfWork, survivor: Customer, merged: Customer) -> None:
    """Mark the merged record, point the records merged into it at the survivor, and let
    the survivor take its acquisition channel when it has none."""
    merged.status = "merged"
    merged.merged_into = survivor.id
    merged.updated_at = utcnow()
    uow.customers.add(merged)
    for earlier in await uow.customers.customers_merged_into(merged.id):
        earlier.merged_into = survivor.id
        uow.customers.add(earlier)
    if survivor.acquisition_channel is None and merged.acquisition_channel:
        await customer_service.record_changes(
            uow, survivor, {"acquisition_channel": merged.acquisition_channel}
        )


async def _known_id(uow: ProfileUnitOfWork, customer_id: str) -> bool:
    """An id without a customer row that tracking calls have used (a pre-identification id)."""
    if await uow.identity.identities_of(customer_id):
        return True
    return await uow.timeline.has_timeline(customer_id)


async def unmerge_customers(
    session: AsyncSession, survivor_id: str, merged_id: str, *, actor: str | None, topic: str
) -> Merge:
    """`unmerge` on the caller's session."""
    return await unmerge(SqlProfileUnitOfWork(session, topic), survivor_id, merged_id, actor=actor)


async def unmerge(
    uow: ProfileUnitOfWork, survivor_id: str, merged_id: str, *, actor: str | None
) -> Merge:
    """Undo a merge: the merged customer's own rows, identities and consents come back."""
    merge = await uow.identity.open_merge(survivor_id, merged_id)
    if merge is None:
        raise CustomerNotFound(f"{merged_id} (no merge into {survivor_id} to undo)")
    survivor = customer_service.changeable(
        await uow.customers.lock_customer(survivor_id), survivor_id
    )
    snapshot = merge.snapshot
    changes = await consent_service._merge_changes(uow, survivor.id, merge)
    await uow.identity.move_rows_back(survivor.id, snapshot["subjects"], merged_id)
    await uow.identity.move_identities(snapshot["identities"], merged_id)
    await uow.identity.delete_identity(ALIAS, merged_id)
    merged = await uow.customers.lock_customer(merged_id)
    if merged is not None:
        await _reinstate(uow, merged, survivor.id)
        await consent_service.restore_consents(
            uow, merged, consent_service._merged_states(snapshot, changes), actor
        )
    await consent_service.restore_consents(
        uow, survivor, consent_service._survivor_states(snapshot, changes), actor
    )
    merge.undone_at = utcnow()
    uow.identity.add(merge)
    await uow.flush()
    await analytics_projection.refresh_values(uow, [survivor.id, merged_id])
    return merge


async def _reinstate(uow: ProfileUnitOfWork, merged: Customer, survivor_id: str) -> None:
    """The merged record is active again; other services dropped or moved this customer at
    the merge, so it is announced again."""
    merged.status = "active"
    merged.merged_into = None
    merged.updated_at = utcnow()
    uow.customers.add(merged)
    await uow.flush()
    await uow.outbox.publish(
        [
            CustomerRegistered(customer_id=merged.id, **event_fields(merged)),
            CustomerUpdated(
                customer_id=merged.id, changes={"status": "active", "unmerged_from": survivor_id}
            ),
        ]
    )
