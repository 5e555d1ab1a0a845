"""Replay: support's projection rebuilt from the log into a fresh database has the rows the
live consumer built, and the tickets (its own records) come over from the live database
(SQLite and PostgreSQL, on the test broker)."""

import io
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from rapport_events.db import create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.replay import Replay
from rapport_events.settings import KafkaSettings
from rapport_events.testing.replays import consume_live, count, handled, projection_rows, put_on_log
from rapport_support.handlers import HANDLERS
from rapport_support.main import MIGRATIONS, VERSION_TABLE
from rapport_support.replay import PLAN
from rapport_support.settings import Settings
from rapport_support.tickets import service
from rapport_support.tickets.models import TicketCreate
from rapport_support.unit_of_work import SqlSupportUnitOfWork

DatabaseFactory = Callable[[str], Awaitable[str]]
EVENTS = 600
CUSTOMERS = 30


async def test_the_rebuilt_database_has_the_live_rows_and_the_live_tickets(
    database_factory: DatabaseFactory, kafka_settings: KafkaSettings
) -> None:
    settings = Settings(database_url="sqlite:///unused.db", kafka=kafka_settings)
    live = await database_factory("live")
    engine = create_engine(live)
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    async with transaction(session_factory(engine)) as session:
        for subject in ("Leaks water", "Grinder noisy"):
            ticket = TicketCreate(customer_id="cust-7-000001", subject=subject)
            await service.open_ticket(SqlSupportUnitOfWork(session, settings), settings, ticket)
    await engine.dispose()
    applied = handled(await put_on_log(kafka_settings, EVENTS, CUSTOMERS), HANDLERS)
    await consume_live(live, "support", kafka_settings, HANDLERS, {"settings": settings}, applied)
    into = await database_factory("replay")
    replay = Replay(PLAN, live, into, kafka_settings, {"settings": settings}, io.StringIO())

    built = await replay.build()
    await replay.swap()

    assert built.applied == applied and built.dead_lettered == 0
    rebuilt = await projection_rows(into, PLAN.rebuilds)
    assert len(rebuilt["support_customers"]) == CUSTOMERS
    assert rebuilt == await projection_rows(live, PLAN.rebuilds)
    assert await projection_rows(into, PLAN.keeps) == await projection_rows(live, PLAN.keeps)
    tickets = text("SELECT count(*) FROM support_tickets")
    assert await count(into, tickets) == 2
