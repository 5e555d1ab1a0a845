"""Dependencies the routes ask for."""

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.db import read_transaction
from rapport_events.deps import SessionDep as SessionDep
from rapport_events.deps import require_token as require_token
from rapport_support.settings import Settings
from rapport_support.unit_of_work import SqlSupportUnitOfWork, SupportUnitOfWork


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A transaction for routes that only read: on SQLite it never waits for the write lock,
    on PostgreSQL it costs no BEGIN and COMMIT (`rapport_events.db.read_transaction`)."""
    async with read_transaction(request.app.state.read_sessions) as session:
        yield session


def wake_replies(request: Request) -> Callable[[], None]:
    """Wakes the reply dispatcher, so a queued reply goes out without waiting for its poll."""
    dispatcher = getattr(request.app.state, "replies", None)
    return dispatcher.wake if dispatcher is not None else (lambda: None)


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the request's transaction has committed (never on rollback)."""
    event.listen(session.sync_session, "after_commit", lambda _session: callback(), once=True)


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_unit_of_work(session: SessionDep, settings: SettingsDep) -> SupportUnitOfWork:
    """The use cases' stores and outbox on the request's transaction."""
    return SqlSupportUnitOfWork(session, settings)


def get_read_unit_of_work(session: ReadSessionDep, settings: SettingsDep) -> SupportUnitOfWork:
    """The same on a read transaction, for the routes that only read."""
    return SqlSupportUnitOfWork(session, settings)


# scope="function", as the sessions they are built on: used up when the route returns.
UnitOfWorkDep = Annotated[SupportUnitOfWork, Depends(get_unit_of_work, scope="function")]
ReadUnitOfWorkDep = Annotated[SupportUnitOfWork, Depends(get_read_unit_of_work, scope="function")]
WakeRepliesDep = Annotated[Callable[[], None], Depends(wake_replies)]
# The page size of a listing.
Limit = Annotated[int, Query(ge=1, le=200)]
