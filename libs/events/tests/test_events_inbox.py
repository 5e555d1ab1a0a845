"""The inbox: a claim is taken once, and old claims are purged by age and consumer only."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from rapport_events import inbox
from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, transaction
from rapport_events.inbox import InboxEntry
from rapport_events.runtime import EventRuntime
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import until
from rapport_events.types import InteractionTracked


async def _add(sessions: SessionFactory, consumer: str, event_id: str, age_s: float) -> None:
    async with transaction(sessions) as session:
        session.add(
            InboxEntry(
                consumer=consumer,
                event_id=event_id,
                event_type="rapport.customer.registered.v2",
                processed_at=utcnow() - timedelta(seconds=age_s),
            )
        )


async def _ids(sessions: SessionFactory) -> set[tuple[str, str]]:
    async with transaction(sessions) as session:
        rows = await session.exec(select(col(InboxEntry.consumer), col(InboxEntry.event_id)))
        return {(consumer, event_id) for consumer, event_id in rows.all()}


class TestPurge:
    async def test_deletes_only_the_consumers_entries_older_than_the_cutoff(
        self, event_sessions: SessionFactory
    ) -> None:
        await _add(event_sessions, "campaign", "old-1", age_s=3_600)
        await _add(event_sessions, "campaign", "old-2", age_s=7_200)
        await _add(event_sessions, "campaign", "new", age_s=10)
        await _add(event_sessions, "support", "old-elsewhere", age_s=7_200)

        async with transaction(event_sessions) as session:
            cutoff = utcnow() - timedelta(seconds=60)
            deleted = await inbox.purge_older_than(session, "campaign", cutoff)

        assert deleted == 2
        assert await _ids(event_sessions) == {("campaign", "new"), ("support", "old-elsewhere")}

    async def test_a_purge_goes_in_batches_until_nothing_old_is_left(
        self, event_sessions: SessionFactory
    ) -> None:
        for number in range(7):
            await _add(event_sessions, "profile", f"old-{number}", age_s=120)
        await _add(event_sessions, "profile", "new", age_s=1)

        deleted = await inbox.purge_expired(event_sessions, "profile", retention_s=60, batch=3)

        assert deleted == 7
        assert await _ids(event_sessions) == {("profile", "new")}

    async def test_a_purged_id_is_claimed_again_while_a_kept_one_is_not(
        self, event_sessions: SessionFactory
    ) -> None:
        await _add(event_sessions, "profile", "purged", age_s=120)
        await _add(event_sessions, "profile", "kept", age_s=1)
        await inbox.purge_expired(event_sessions, "profile", retention_s=60)

        async with transaction(event_sessions) as session:
            kept = await inbox.claim(session, "profile", "kept", "t")
            purged = await inbox.claim(session, "profile", "purged", "t")
        assert (kept, purged) == (False, True)


class TestScheduledPurge:
    async def test_a_consuming_runtime_purges_its_group_at_start_and_watches_the_worker(
        self, event_engine: AsyncEngine, event_sessions: SessionFactory
    ) -> None:
        await _add(event_sessions, "campaign", "old", age_s=7_200)
        await _add(event_sessions, "campaign", "new", age_s=1)
        settings = KafkaSettings(bootstrap_servers="127.0.0.1:1", inbox_retention_s=60)
        runtime = EventRuntime(
            service="campaign",
            engine=event_engine,
            settings=settings,
            handlers={InteractionTracked: [ignore]},
        )
        await runtime.start()
        try:
            await until(lambda: _gone(event_sessions, "old"), timeout=10, what="the old id purged")
            names = [task.name for task in runtime.supervised()]
        finally:
            await runtime.stop()
        assert await _ids(event_sessions) == {("campaign", "new")}
        assert "campaign-inbox-purge" in names


async def ignore(event: InteractionTracked) -> None:
    return None


async def _gone(sessions: SessionFactory, event_id: str) -> bool:
    return all(kept != event_id for _, kept in await _ids(sessions))
