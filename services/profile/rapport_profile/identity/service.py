"""Identity resolution: who an id belongs to now, merges and unmerges of customers."""

import functools
from collections.abc import Collection

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import customer_ids as customer_ids_kit
from rapport_events.base import utcnow
from rapport_events.types import (
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
)
from rapport_profile.analytics import projection as analytics_projection
from rapport_profile.analytics.models import CustomerMetrics
from rapport_profile.consents import service as consent_service
from rapport_profile.consents import store as consent_store
from rapport_profile.customers import service as customer_service
from rapport_profile.customers import store as customer_store
from rapport_profile.customers.models import event_fields
from rapport_profile.errors import Conflict, CustomerNotFound, InvalidRequest
from rapport_profile.gdpr import store as gdpr_store
from rapport_profile.identity import store
from rapport_profile.identity.models import Identity, Merge
from rapport_profile.shared import add, publish
from rapport_profile.timeline import store as timeline_store

ALIAS = "alias"


async def resolve(session: AsyncSession, customer_id: str) -> str | None:
    """The id that owns `customer_id` now, through merges; None when erased."""
    return (await resolve_all(session, [customer_id]))[customer_id]


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
    owners = await customer_ids_kit.owners_through_merges(
        [customer_id], functools.partial(store.aliases_among, session, ALIAS)
    )
    return owners[customer_id]


async def is_erased(session: AsyncSession, customer_id: str) -> bool:
    return await gdpr_store.get_erasure(session, customer_id) is not None


async def merge_customers(
    session: AsyncSession,
    survivor_id: str,
    merged_id: str,
    *,
    reason: str,
    actor: str | None,
    topic: str,
) -> Merge:
    """Fold `merged_id` into `survivor_id`: rows, identities and metrics move; consents
    resolve to the most restrictive; customer.merged is published."""
    if survivor_id == merged_id:
        raise InvalidRequest("a customer cannot be merged into itself")
    survivor = await customer_service.active_customer(session, survivor_id)
    merged = await customer_store.lock_customer(session, merged_id)
    if merged is None:
        if await resolve(session, merged_id) != merged_id or not await _known_id(
            session, merged_id
        ):
            raise CustomerNotFound(merged_id)
    elif merged.status != "active":
        raise Conflict(f"customer {merged_id} was already merged into {merged.merged_into}")
    subjects = [merged_id] + [
        i.value for i in await store.identities_of(session, merged_id) if i.kind == ALIAS
    ]
    snapshot = {
        "subjects": subjects,
        "identities": [[i.kind, i.value] for i in await store.identities_of(session, merged_id)],
        "survivor_consents": [
            consent_service._consent_state(c)
            for c in await consent_store.consents_of(session, survivor.id)
        ],
        "merged_consents": [
            consent_service._consent_state(c)
            for c in await consent_store.consents_of(session, merged_id)
        ],
    }
    await store.repoint_identities(session, merged_id, survivor.id)
    add(session, Identity(kind=ALIAS, value=merged_id, customer_id=survivor.id))
    await store.move_rows(session, merged_id, survivor.id)
    before = survivor.consent_version
    await consent_service._restrict_consents(session, survivor, merged_id, actor, topic)
    # The versions the merge gave its consent changes, so an unmerge undoes only those.
    snapshot["survivor_consent_versions"] = [before, survivor.consent_version]
    if merged is not None:
        merged.status = "merged"
        merged.merged_into = survivor.id
        merged.updated_at = utcnow()
        session.add(merged)
        for earlier in await customer_store.customers_merged_into(session, merged_id):
            earlier.merged_into = survivor.id
            session.add(earlier)
        if survivor.acquisition_channel is None and merged.acquisition_channel:
            customer_service.apply_changes(
                session, survivor, {"acquisition_channel": merged.acquisition_channel}, topic
            )
    await session.flush()
    await analytics_projection.refresh_metrics(session, survivor.id, topic)
    await gdpr_store.delete_rows(session, CustomerMetrics, "customer_id", merged_id)
    merge = Merge(
        customer_id=survivor.id,
        merged_customer_id=merged_id,
        reason=reason,
        actor=actor,
        snapshot=snapshot,
    )
    add(session, merge)
    publish(
        session,
        CustomerMerged(
            customer_id=survivor.id,
            merged_customer_id=merged_id,
            reason=reason,  # type: ignore[arg-type]
            actor=actor,
        ),
        topic,
    )
    return merge


async def _known_id(session: AsyncSession, customer_id: str) -> bool:
    """An id without a customer row that tracking calls have used (a pre-identification id)."""
    if await store.identities_of(session, customer_id):
        return True
    return await timeline_store.has_timeline(session, customer_id)


async def unmerge_customers(
    session: AsyncSession, survivor_id: str, merged_id: str, *, actor: str | None, topic: str
) -> Merge:
    """Undo a merge: the merged customer's own rows, identities and consents come back."""
    merge = await store.open_merge(session, survivor_id, merged_id)
    if merge is None:
        raise CustomerNotFound(f"{merged_id} (no merge into {survivor_id} to undo)")
    survivor = await customer_service.active_customer(session, survivor_id)
    snapshot = merge.snapshot
    changes = await consent_service._merge_changes(session, survivor.id, merge)
    await store.move_rows_back(session, survivor.id, snapshot["subjects"], merged_id)
    await store.move_identities(session, snapshot["identities"], merged_id)
    await store.delete_identity(session, ALIAS, merged_id)
    merged = await customer_store.lock_customer(session, merged_id)
    if merged is not None:
        merged.status = "active"
        merged.merged_into = None
        merged.updated_at = utcnow()
        session.add(merged)
        await session.flush()
        # Other services dropped or moved this customer at the merge: announce it again.
        publish(session, CustomerRegistered(customer_id=merged.id, **event_fields(merged)), topic)
        publish(
            session,
            CustomerUpdated(
                customer_id=merged.id, changes={"status": "active", "unmerged_from": survivor.id}
            ),
            topic,
        )
        await consent_service._restore_consents(
            session, merged, consent_service._merged_states(snapshot, changes), actor, topic
        )
    await consent_service._restore_consents(
        session, survivor, consent_service._survivor_states(snapshot, changes), actor, topic
    )
    merge.undone_at = utcnow()
    session.add(merge)
    await session.flush()
    await analytics_projection.refresh_metrics_of(session, [survivor.id, merged_id], topic)
    return merge
