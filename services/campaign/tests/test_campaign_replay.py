"""Replay: campaign's projection rebuilt from the log into a fresh database has the rows the
live consumer built; an interrupted replay resumes without applying anything twice; what
cannot be replayed safely is refused (SQLite and PostgreSQL, on the test broker)."""

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy import select, text

from rapport_campaign.handlers import HANDLERS
from rapport_campaign.main import MIGRATIONS, VERSION_TABLE
from rapport_campaign.replay import PLAN, run
from rapport_campaign.segments import service as segment_service
from rapport_campaign.segments.models import SegmentCreate
from rapport_campaign.settings import Settings
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork
from rapport_events import replay as replay_module
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.replay import STATE, Offsets, Progress, Replay, ReplayPlan, ReplayRefused
from rapport_events.settings import KafkaSettings
from rapport_events.testing.replays import consume_live, count, projection_rows, put_on_log
from rapport_partner_share.replay import run as partner_share
from rapport_profile.replay import run as profile

DatabaseFactory = Callable[[str], Awaitable[str]]
EVENTS = 700
CUSTOMERS = 35
SEGMENTS = {
    "buyers": {"metric": "orders", "op": "gte", "value": 2},
    "french": {"attribute": "country", "op": "eq", "value": "FR"},
    "reachable": {"consent": "email"},
}


def settings_for(kafka: KafkaSettings) -> Settings:
    return Settings(database_url="sqlite:///unused.db", kafka=kafka, public_url="http://c.test")


async def live_database(
    database_factory: DatabaseFactory, settings: Settings, label: str = "live"
) -> str:
    url = await database_factory(label)
    engine = create_engine(url)
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    async with transaction(session_factory(engine)) as session:
        for name, rule in SEGMENTS.items():
            segment = SegmentCreate.model_validate({"name": name, "rule": rule})
            await segment_service.create_segment(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), segment
            )
    await engine.dispose()
    return url


async def projection(url: str) -> dict[str, list[tuple[str, ...]]]:
    return await projection_rows(url, PLAN.rebuilds)


@pytest.fixture
async def built_live(
    database_factory: DatabaseFactory, kafka_settings: KafkaSettings
) -> tuple[str, Settings]:
    """A live campaign database whose consumer applied the log of EVENTS events."""
    settings = settings_for(kafka_settings)
    url = await live_database(database_factory, settings)
    await put_on_log(kafka_settings, EVENTS, CUSTOMERS)
    await consume_live(url, "campaign", kafka_settings, HANDLERS, {"settings": settings}, EVENTS)
    return url, settings


class TestReplayRebuildsTheLiveProjection:
    async def test_the_rebuilt_database_has_the_rows_the_live_consumer_built(
        self, built_live: tuple[str, Settings], database_factory: DatabaseFactory
    ) -> None:
        live_url, settings = built_live
        into = await database_factory("replay")
        out = io.StringIO()
        replay = Replay(PLAN, live_url, into, settings.kafka, {"settings": settings}, out)

        built = await replay.build()
        await replay.swap()

        assert built.applied == EVENTS and built.dead_lettered == 0
        live, rebuilt = await projection(live_url), await projection(into)
        assert sum(map(len, live.values())) > EVENTS  # the comparison compares something
        assert rebuilt == live
        # The replay's own outbox (segment events published long ago) is gone; the live
        # outbox came over in its place.
        outbox = text("SELECT count(*) FROM outbox")
        assert await count(into, outbox) == await count(live_url, outbox)
        assert "replay campaign [" in out.getvalue() and "ETA" in out.getvalue()

    async def test_an_interrupted_replay_resumes_and_applies_each_event_once(
        self,
        built_live: tuple[str, Settings],
        database_factory: DatabaseFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        live_url, settings = built_live
        into = await database_factory("replay")
        replay = Replay(PLAN, live_url, into, settings.kafka, {"settings": settings}, io.StringIO())
        inbox = text("SELECT count(*) FROM inbox")
        # The process dies while applying its third fetch of 200 records.
        monkeypatch.setattr(replay_module, "REPLAY_FETCH_RECORDS", 200)
        apply_fetched = ConsumerRunner.apply_fetched
        calls = 0

        async def dies_on_the_third(runner: ConsumerRunner, *args: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise ProcessDied
            await apply_fetched(runner, *args)

        monkeypatch.setattr(ConsumerRunner, "apply_fetched", dies_on_the_third)
        with pytest.raises(ProcessDied):
            await replay.build()
        monkeypatch.setattr(ConsumerRunner, "apply_fetched", apply_fetched)
        interrupted_at = await count(into, inbox)
        assert 0 < interrupted_at < EVENTS
        # As if it had died after its database commits but before committing any offset:
        # the resumed replay reads the log from its start again.
        await _rewind(settings.kafka, await _group_of(into))

        resumed = await replay.build()
        await replay.swap()

        assert resumed.applied == EVENTS - interrupted_at
        assert await count(into, inbox) == EVENTS
        assert await projection(into) == await projection(live_url)


class ProcessDied(Exception):
    """Stands for a replay process killed mid-way."""


async def _group_of(url: str) -> str:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return str(await connection.scalar(select(STATE.c.group_id)))
    finally:
        await engine.dispose()


async def _rewind(kafka: KafkaSettings, group: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=group)
    await consumer.start()
    try:
        partitions = [TopicPartition(kafka.topic, n) for n in range(kafka.partitions)]
        consumer.assign(partitions)
        await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in partitions})
    finally:
        await consumer.stop()


class TestReplayRefusesWhatItCannotDoSafely:
    async def test_a_service_declared_unreplayable_is_refused_with_its_reason(
        self, database_url: str, kafka_settings: KafkaSettings
    ) -> None:
        plan = ReplayPlan(
            service="x",
            handlers={},
            migrations=MIGRATIONS,
            version_table=VERSION_TABLE,
            refusal="its tables are its own records",
        )
        replay = Replay(plan, database_url, "sqlite:///elsewhere.db", kafka_settings)
        with pytest.raises(ReplayRefused, match="its tables are its own records"):
            await replay.build()

    async def test_building_into_the_live_database_is_refused(
        self, database_url: str, kafka_settings: KafkaSettings
    ) -> None:
        replay = Replay(PLAN, database_url, database_url, kafka_settings)
        with pytest.raises(ReplayRefused, match="another database"):
            await replay.build()

    async def test_a_table_the_plan_does_not_classify_is_refused(
        self, database_factory: DatabaseFactory, kafka_settings: KafkaSettings
    ) -> None:
        live = await live_database(database_factory, settings_for(kafka_settings))
        engine = create_engine(live)
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE campaign_new_things (id INTEGER)"))
        await engine.dispose()
        replay = Replay(PLAN, live, await database_factory("replay"), kafka_settings)
        with pytest.raises(ReplayRefused, match="campaign_new_things"):
            await replay.build()

    async def test_a_database_holding_data_it_did_not_build_is_refused(
        self, database_factory: DatabaseFactory, kafka_settings: KafkaSettings
    ) -> None:
        settings = settings_for(kafka_settings)
        live = await live_database(database_factory, settings)
        other = await live_database(database_factory, settings, label="other")
        replay = Replay(PLAN, live, other, kafka_settings)
        with pytest.raises(ReplayRefused, match="give a fresh database"):
            await replay.build()

    async def test_a_segment_created_during_the_build_stops_the_swap(
        self, database_factory: DatabaseFactory, kafka_settings: KafkaSettings
    ) -> None:
        settings = settings_for(kafka_settings)
        live = await live_database(database_factory, settings)
        into = await database_factory("replay")
        replay = Replay(PLAN, live, into, kafka_settings, {"settings": settings}, io.StringIO())
        await replay.build()
        engine = create_engine(live)
        async with transaction(session_factory(engine)) as session:
            segment = SegmentCreate.model_validate({"name": "new", "rule": {"consent": "sms"}})
            await segment_service.create_segment(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), segment
            )
        await engine.dispose()
        with pytest.raises(ReplayRefused, match="campaign_segments changed"):
            await replay.swap()

    async def test_a_swap_while_the_service_still_consumes_is_refused(
        self,
        database_factory: DatabaseFactory,
        kafka_settings: KafkaSettings,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        settings = settings_for(kafka_settings)
        live = await live_database(database_factory, settings)
        into = await database_factory("replay")
        await put_on_log(kafka_settings, 50, 5)
        replay = Replay(PLAN, live, into, kafka_settings, {"settings": settings}, io.StringIO())
        await replay.build()
        read = replay_module.live_committed
        reads = 0

        async def still_consuming(*args: Any) -> dict[TopicPartition, int]:
            # The live group commits between the swap's two readings of its offsets.
            nonlocal reads
            reads += 1
            found = await read(*args)
            return {tp: offset + reads for tp, offset in found.items()}

        monkeypatch.setattr(replay_module, "live_committed", still_consuming)
        with pytest.raises(ReplayRefused, match="moved during the swap: stop campaign"):
            await replay.swap()


class TestProgress:
    def test_the_line_shows_share_rate_eta_and_log_end(self) -> None:
        tp = TopicPartition("t", 0)
        offsets = Offsets(start={tp: 0}, position={tp: 2500}, target={tp: 10_000})
        offsets.log_end[tp] = 10_400
        line = Progress("replay campaign", io.StringIO(), width=10).line(offsets, elapsed=0.5)
        assert line == (
            "replay campaign [##--------]  25% 2,500/10,000 events 5,000/s ETA 0:02; "
            "log end 10,400 (fetch high-water marks)"
        )

    def test_nothing_to_do_is_complete(self) -> None:
        line = Progress("r", io.StringIO(), width=4).line(Offsets(), elapsed=0.0)
        assert "[####] 100% 0/0 events" in line and "ETA --:--" in line


class TestTheCommand:
    async def test_build_then_swap_from_the_environment(
        self,
        database_factory: DatabaseFactory,
        kafka_settings: KafkaSettings,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        live = await live_database(database_factory, settings_for(kafka_settings))
        into = await database_factory("replay")
        monkeypatch.setenv("CAMPAIGN_DATABASE_URL", live)
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
        monkeypatch.setenv("KAFKA_TOPIC", kafka_settings.topic)
        # The command runs its own event loop, as `python -m` does.
        assert await asyncio.to_thread(run, ["build", "--into", into]) == 0
        assert await asyncio.to_thread(run, ["swap", "--into", into]) == 0
        said = capsys.readouterr().err
        assert f"swap --into {into}" in said
        assert "KAFKA_CONSUMER_GROUP=campaign-replay-" in said
        assert await asyncio.to_thread(run, ["swap", "--into", into]) == 2
        assert "already swapped" in capsys.readouterr().err

    def test_a_service_that_cannot_be_replayed_says_why(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert profile(["build"]) == 2
        assert "profile cannot be replayed: its API moves" in capsys.readouterr().err
        assert partner_share(["build"]) == 2
        assert "fetched from profile over HTTP" in capsys.readouterr().err
