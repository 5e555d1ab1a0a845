"""GDPR: export what every service holds about a customer, and erase it everywhere.

The steps inside one transaction take a `ProfileUnitOfWork` (`local_records`,
`request_erasure`, `forget`, `erasure_services`, `record_progress`); the routes' functions
(`read_local_records`, `erase`, `check`) open short transactions around them and build the
SQL one on each, so that no transaction stays open while the other services are asked.
The erasure projection calls `purge` and `purge_published` on its own session."""

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import httpx
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

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
from rapport_profile.customers.models import (
    AccountMember,
    Customer,
    IdempotentRequest,
    SegmentMembership,
)
from rapport_profile.errors import CustomerNotFound
from rapport_profile.gdpr import store
from rapport_profile.gdpr.models import Erasure, ErasureStatus
from rapport_profile.identity.models import Identity, Merge
from rapport_profile.identity.store import ALIAS
from rapport_profile.settings import Settings
from rapport_profile.shared import aware
from rapport_profile.timeline import service as timeline_service
from rapport_profile.timeline.models import Disclosure, TimelineEntry
from rapport_profile.tracking.models import TrackedMessage
from rapport_profile.unit_of_work import ProfileUnitOfWork, SqlProfileUnitOfWork

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


async def local_records(
    uow: ProfileUnitOfWork, customer_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Everything profile holds about the customer, table by table."""
    return {
        name: [
            row.model_dump(mode="json")
            for row in await uow.gdpr.rows_of(model, column, customer_id)
        ]
        for name, model, column in HOLDINGS
    }


async def read_local_records(
    sessions: SessionFactory, customer_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Profile's records of the customer, read in a transaction that ends before any peer call."""
    async with read_transaction(sessions) as session:
        return await local_records(SqlProfileUnitOfWork(session), customer_id)


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
    """`purge_records` on the caller's session (the erasure projection)."""
    await purge_records(SqlProfileUnitOfWork(session), customer_id)


async def purge_records(uow: ProfileUnitOfWork, customer_id: str) -> None:
    """Delete every row about the customer (safe to repeat)."""
    for _name, model, column in HOLDINGS:
        if model is Customer and column == "merged_into":
            continue
        await uow.gdpr.delete_rows(model, column, customer_id)


async def forget(uow: ProfileUnitOfWork, customer_id: str, services: list[str]) -> list[str]:
    """Erase the customer, the duplicates merged into it and its pre-identification ids;
    keep only tombstones. Returns every id erased."""
    ids = [customer_id]
    ids += [c.id for c in await uow.customers.customers_merged_into(customer_id)]
    ids += [
        i.value
        for i in await uow.identity.identities_of(customer_id)
        if i.kind == ALIAS and i.value not in ids
    ]
    for erased in ids:
        await purge_records(uow, erased)
        await uow.identity.delete_identity(ALIAS, erased)
        if await uow.gdpr.get_erasure(erased) is None:
            main = erased == customer_id
            uow.gdpr.add(
                Erasure(
                    customer_id=erased,
                    services={name: None for name in services} if main else {},
                    subjects=ids if main else [erased],
                )
            )
    # Events not sent yet still go out (customer.erased must follow them on the log);
    # purge_published removes them once they have.
    await uow.gdpr.delete_sent_outbox_rows(ids)
    return ids


async def purge_published(session: AsyncSession, customer_id: str, erased_event_id: str) -> None:
    """Drop the outbox rows about an erased customer once customer.erased is on the log.

    Rows before our customer.erased went out ahead of it on the customer's partition;
    for an erasure published elsewhere only rows marked sent are known to be out.
    """
    gdpr = store.SqlGdprStore(session)
    up_to = await gdpr.outbox_id(erased_event_id)
    await gdpr.delete_sent_outbox_rows([customer_id], up_to_id=up_to)


async def outbox_clear(sessions: SessionFactory, subjects: list[str]) -> bool:
    """True when no outbox row about the erased ids is left (sent ones are purged first)."""
    async with transaction(sessions) as session:
        gdpr = store.SqlGdprStore(session)
        if await gdpr.delete_sent_outbox_rows(subjects):
            checkpoint_after_commit(session)
        return await gdpr.count_outbox_rows(subjects) == 0


async def erase(
    sessions: SessionFactory, http: httpx.AsyncClient, settings: Settings, customer_id: str
) -> ErasureStatus:
    """Erase here and publish customer.erased; wait (bounded) until every service holds nothing."""
    services = [SELF, *settings.peers]
    async with transaction(sessions) as session:
        uow = SqlProfileUnitOfWork(session, settings.kafka.topic)
        customer_id, erased = await request_erasure(uow, customer_id, services)
        if erased:
            checkpoint_after_commit(session)
    return await check(sessions, http, settings, customer_id, wait_s=settings.erasure_wait_s)


async def request_erasure(
    uow: ProfileUnitOfWork, customer_id: str, services: list[str]
) -> tuple[str, list[str]]:
    """Erase the customer here and publish customer.erased for every id erased with it.

    Returns the id the erasure is kept under (the owner of a merged id) and the ids erased
    now: none when it was erased before, so a repeated request changes nothing.
    """
    if await uow.gdpr.get_erasure(customer_id) is None:
        # A merged id is the same person as the customer it was folded into.
        customer_id = await timeline_service.owner_of(uow, customer_id)
    if await uow.gdpr.get_erasure(customer_id) is not None:
        return customer_id, []
    erased = await forget(uow, customer_id, services)
    for each in erased:
        await uow.outbox.publish(
            [CustomerErased(customer_id=each, requested_by="api", reason="gdpr_erasure")]
        )
        # After customer.erased: the log's copies of their personal fields become
        # unreadable for every reader (rapport_events.shredding).
        await uow.gdpr.shred(each)
    return customer_id, erased


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
        done = await erasure_services(SqlProfileUnitOfWork(session), customer_id)
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
        uow = SqlProfileUnitOfWork(session, settings.kafka.topic)
        return await record_progress(uow, customer_id, done)


async def erasure_services(uow: ProfileUnitOfWork, customer_id: str) -> dict[str, str | None]:
    """When each service was seen holding nothing (None: not yet); CustomerNotFound when no
    erasure was requested under this id."""
    erasure = await uow.gdpr.get_erasure(customer_id)
    if erasure is None or not erasure.services:
        raise CustomerNotFound(f"{customer_id} (no erasure requested)")
    return dict(erasure.services)


async def record_progress(
    uow: ProfileUnitOfWork, customer_id: str, done: dict[str, str | None]
) -> ErasureStatus:
    """Record which services hold nothing now; the erasure completes when the last does."""
    erasure = await uow.gdpr.get_erasure(customer_id)
    assert erasure is not None
    erasure.services = {**done}
    if all(done.values()) and erasure.completed_at is None:
        erasure.completed_at = max(datetime.fromisoformat(at) for at in done.values() if at)
    uow.gdpr.add(erasure)
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
            uow = SqlProfileUnitOfWork(session, settings.kafka.topic)
            erasure = await uow.gdpr.get_erasure(customer_id)
            subjects = (erasure.subjects if erasure else None) or [customer_id]
            if not holds_nothing(await local_records(uow, customer_id)):
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
