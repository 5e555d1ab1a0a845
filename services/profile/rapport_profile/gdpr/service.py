"""GDPR: export what every service holds about a customer, and erase it everywhere."""

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import httpx
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.base import utcnow
from rapport_events.db import (
    SessionFactory,
    checkpoint_after_commit,
    read_transaction,
    transaction,
)
from rapport_events.http import peer_url
from rapport_events.types import CustomerErased
from rapport_profile.analytics.models import CustomerMetrics, Order
from rapport_profile.consents.models import Consent, ConsentChange
from rapport_profile.customers import store as customer_store
from rapport_profile.customers.models import (
    AccountMember,
    Customer,
    IdempotentRequest,
    SegmentMembership,
)
from rapport_profile.errors import CustomerNotFound
from rapport_profile.gdpr import store
from rapport_profile.gdpr.models import Erasure, ErasureStatus
from rapport_profile.identity import service as identity_service
from rapport_profile.identity import store as identity_store
from rapport_profile.identity.models import Identity, Merge
from rapport_profile.settings import Settings
from rapport_profile.shared import add, aware, publish
from rapport_profile.timeline import service as timeline_service
from rapport_profile.timeline.models import Disclosure, TimelineEntry
from rapport_profile.tracking.models import TrackedMessage

log = logging.getLogger(__name__)


SELF = "profile"


# Every table that holds something about a customer, by the column naming them.
HOLDINGS: tuple[tuple[str, type[SQLModel], str], ...] = (
    ("customers", Customer, "id"),
    ("merged_customers", Customer, "merged_into"),
    ("identities", Identity, "customer_id"),
    ("merges", Merge, "customer_id"),
    ("merged_from", Merge, "merged_customer_id"),
    ("consents", Consent, "customer_id"),
    ("consent_history", ConsentChange, "customer_id"),
    ("timeline", TimelineEntry, "customer_id"),
    ("orders", Order, "customer_id"),
    ("metrics", CustomerMetrics, "customer_id"),
    ("segments", SegmentMembership, "customer_id"),
    ("disclosures", Disclosure, "customer_id"),
    ("tracked_messages", TrackedMessage, "customer_id"),
    ("account_memberships", AccountMember, "customer_id"),
    ("idempotent_requests", IdempotentRequest, "customer_id"),
)


async def local_records(session: AsyncSession, customer_id: str) -> dict[str, list[dict[str, Any]]]:
    """Everything profile holds about the customer, table by table."""
    return {
        name: [
            row.model_dump(mode="json")
            for row in await store.rows_of(session, model, column, customer_id)
        ]
        for name, model, column in HOLDINGS
    }


async def read_local_records(
    sessions: SessionFactory, customer_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Profile's records of the customer, read in a transaction that ends before any peer call."""
    async with read_transaction(sessions) as session:
        return await local_records(session, customer_id)


TOMBSTONE_MARKERS = ("tombstone", "erasure", "erased")


def holds_nothing(records: dict[str, Any]) -> bool:
    """True when no record is left but tombstones (the id alone, kept to drop late events)."""
    return all(
        not rows
        for name, rows in records.items()
        if not any(marker in name.lower() for marker in TOMBSTONE_MARKERS)
    )


async def _fetch_export(
    http: httpx.AsyncClient, settings: Settings, name: str, base_url: str, customer_id: str
) -> dict[str, Any]:
    token = settings.services_token or settings.api_token
    response = await http.get(
        peer_url(base_url, "customers", customer_id, "export"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=settings.peer_timeout_s,
    )
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("records"), dict):
        raise ValueError(f"{name} answered an export without `records`")
    return body


async def gather_exports(
    http: httpx.AsyncClient, settings: Settings, customer_id: str
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Every other service's export of the customer; False when one could not be had."""
    peers = settings.peers

    async def one(name: str, url: str) -> dict[str, Any]:
        try:
            return await _fetch_export(http, settings, name, url, customer_id)
        except (httpx.HTTPError, ValueError) as error:
            log.warning("export from %s failed: %s", name, error)
            return {"service": name, "customer_id": customer_id, "error": str(error) or repr(error)}

    results = await asyncio.gather(*(one(name, url) for name, url in peers.items()))
    exports = dict(zip(peers, results, strict=True))
    return exports, all("error" not in body for body in exports.values())


async def purge(session: AsyncSession, customer_id: str) -> None:
    """Delete every row about the customer (safe to repeat)."""
    for _name, model, column in HOLDINGS:
        if model is Customer and column == "merged_into":
            continue
        await store.delete_rows(session, model, column, customer_id)


async def forget(session: AsyncSession, customer_id: str, services: list[str]) -> list[str]:
    """Erase the customer, the duplicates merged into it and its pre-identification ids;
    keep only tombstones. Returns every id erased."""
    ids = [customer_id]
    ids += [c.id for c in await customer_store.customers_merged_into(session, customer_id)]
    ids += [
        i.value
        for i in await identity_store.identities_of(session, customer_id)
        if i.kind == identity_service.ALIAS and i.value not in ids
    ]
    for erased in ids:
        await purge(session, erased)
        await identity_store.delete_identity(session, identity_service.ALIAS, erased)
        if await store.get_erasure(session, erased) is None:
            main = erased == customer_id
            add(
                session,
                Erasure(
                    customer_id=erased,
                    services={name: None for name in services} if main else {},
                    subjects=ids if main else [erased],
                ),
            )
    # Events not sent yet still go out (customer.erased must follow them on the log);
    # purge_published removes them once they have.
    await store.delete_outbox_rows(session, ids)
    return ids


async def purge_published(session: AsyncSession, customer_id: str, erased_event_id: str) -> None:
    """Drop the outbox rows about an erased customer once customer.erased is on the log.

    Rows before our customer.erased went out ahead of it on the customer's partition;
    for an erasure published elsewhere only rows marked sent are known to be out.
    """
    up_to = await store.outbox_id(session, erased_event_id)
    await store.delete_outbox_rows(session, [customer_id], up_to_id=up_to)


async def outbox_clear(sessions: SessionFactory, subjects: list[str]) -> bool:
    """True when no outbox row about the erased ids is left (sent ones are purged first)."""
    async with transaction(sessions) as session:
        if await store.delete_outbox_rows(session, subjects):
            checkpoint_after_commit(session)
        return await store.count_outbox_rows(session, subjects) == 0


async def erase(
    sessions: SessionFactory, http: httpx.AsyncClient, settings: Settings, customer_id: str
) -> ErasureStatus:
    """Erase here and publish customer.erased; wait (bounded) until every service holds nothing."""
    services = [SELF, *settings.peers]
    async with transaction(sessions) as session:
        if await store.get_erasure(session, customer_id) is None:
            # A merged id is the same person as the customer it was folded into.
            customer_id = await timeline_service.known_owner(session, customer_id)
        if await store.get_erasure(session, customer_id) is None:
            checkpoint_after_commit(session)
            for erased in await forget(session, customer_id, services):
                publish(
                    session,
                    CustomerErased(customer_id=erased, requested_by="api", reason="gdpr_erasure"),
                    settings.kafka.topic,
                )
                # After customer.erased: the log's copies of their personal fields become
                # unreadable for every reader (rapport_events.shredding).
                await outbox.shred(session, erased)
    return await check(sessions, http, settings, customer_id, wait_s=settings.erasure_wait_s)


async def check(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    settings: Settings,
    customer_id: str,
    *,
    wait_s: float = 0.0,
) -> ErasureStatus:
    """Ask the services still pending whether they hold anything; record who finished when."""
    # No transaction stays open while the peers are asked: they may take seconds to answer.
    async with read_transaction(sessions) as session:
        erasure = await store.get_erasure(session, customer_id)
        if erasure is None or not erasure.services:
            raise CustomerNotFound(f"{customer_id} (no erasure requested)")
        done: dict[str, str | None] = dict(erasure.services)
    deadline = time.monotonic() + wait_s
    while True:
        pending = [name for name, at in done.items() if at is None]
        answers = await asyncio.gather(
            *(_holds_nothing(sessions, http, settings, name, customer_id) for name in pending)
        )
        for name, finished in zip(pending, answers, strict=True):
            if finished:
                done[name] = utcnow().isoformat()
        if all(done.values()) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    async with transaction(sessions) as session:
        erasure = await store.get_erasure(session, customer_id)
        assert erasure is not None
        erasure.services = {**done}
        if all(done.values()) and erasure.completed_at is None:
            erasure.completed_at = max(datetime.fromisoformat(at) for at in done.values() if at)
        session.add(erasure)
        return _status(erasure)


async def _holds_nothing(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    settings: Settings,
    name: str,
    customer_id: str,
) -> bool:
    if name == SELF:
        async with read_transaction(sessions) as session:
            erasure = await store.get_erasure(session, customer_id)
            subjects = (erasure.subjects if erasure else None) or [customer_id]
            if not holds_nothing(await local_records(session, customer_id)):
                return False
        return await outbox_clear(sessions, subjects)
    url = settings.peers.get(name)
    if url is None:
        return True  # no longer configured: nothing to wait for
    try:
        body = await _fetch_export(http, settings, name, url, customer_id)
    except (httpx.HTTPError, ValueError) as error:
        log.info("erasure check of %s at %s failed: %s", customer_id, name, error)
        return False
    return holds_nothing(body["records"])


def _status(erasure: Erasure) -> ErasureStatus:
    return ErasureStatus(
        customer_id=erasure.customer_id,
        status="completed" if erasure.completed_at is not None else "pending",
        requested_at=aware(erasure.requested_at),
        completed_at=aware(erasure.completed_at) if erasure.completed_at else None,
        services={
            name: datetime.fromisoformat(at) if at else None
            for name, at in erasure.services.items()
        },
        status_url=f"/customers/{erasure.customer_id}/erasure",
    )
