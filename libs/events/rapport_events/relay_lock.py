"""One active outbox relay per PostgreSQL database: a session-level advisory lock.

The lock lives on a connection of its own, outside the engine's pool, so it is held
exactly as long as that session: PostgreSQL releases it when the process dies, when
the connection drops, or when the session stays idle past `idle_timeout_s` (a frozen
process). The relay that holds it publishes; the others stand by and try it again.
The holder learns of a lost session at once (asyncpg's termination listener) or at
its next check, and stops sending before it could take the lock back.

It needs a real session: behind a PgBouncer in transaction pooling mode each
statement may run on another server connection, so the lock would be taken on one
session and the check would run on another. Point the services at PostgreSQL
directly, or at a session-pooling PgBouncer.

SQLite needs none of this: one process owns the database file, so it has one relay.
"""

import asyncio
import contextlib
import hashlib
import logging

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# One lock per database: advisory locks are scoped to the database they are taken in,
# and a service's outbox is one table of its own database.
RELAY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"rapport.outbox-relay").digest()[:8], "big", signed=True
)


class AdvisoryLock:
    """A `pg_try_advisory_lock` held by one dedicated connection, and news of its loss."""

    def __init__(
        self,
        dsn: str,
        key: int = RELAY_LOCK_KEY,
        *,
        timeout_s: float = 2.0,
        idle_timeout_s: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self.key = key
        self._timeout_s = timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._connection: asyncpg.Connection | None = None
        self.held = False
        self.lost = asyncio.Event()
        self.lost_reason: str | None = None

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the lock's session (what pg_terminate_backend takes)."""
        connection = self._connection
        return None if connection is None or connection.is_closed() else connection.get_server_pid()

    async def try_acquire(self) -> bool:
        """Take the lock if no other session holds it; True when this one holds it now."""
        if self.held:
            return True
        async with asyncio.timeout(self._timeout_s):
            connection = await self._connect()
            taken = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", self.key))
        if taken:
            self.held, self.lost_reason = True, None
            self.lost.clear()
        return taken

    async def check(self) -> None:
        """Ask the lock's session whether it is alive; a session that does not answer loses it."""
        connection = self._connection
        if not self.held or connection is None:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await connection.fetchval("SELECT 1")
        except Exception as error:
            self._lose(f"the lock's session did not answer ({type(error).__name__}: {error})")

    async def release(self) -> None:
        """Give the lock up (a standby takes over at once) and close its connection."""
        connection, self._connection = self._connection, None
        self.held = False
        if connection is None or connection.is_closed():
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await connection.close()  # ending the session releases the lock
        except Exception:
            connection.terminate()

    async def _connect(self) -> asyncpg.Connection:
        connection = self._connection
        if connection is not None and not connection.is_closed():
            return connection
        connection = await asyncpg.connect(self._dsn)
        # The session must stay idle only between checks: one that stays idle longer
        # belongs to a process that stopped running, and its lock must be released.
        idle_ms = int(self._idle_timeout_s * 1000)
        try:
            await connection.execute(f"SET idle_session_timeout = {idle_ms}")
        except asyncpg.PostgresError as error:  # before PostgreSQL 14
            log.warning("a frozen relay would keep its lock: %s", error)
        connection.add_termination_listener(self._on_terminated)
        self._connection = connection
        return connection

    def _on_terminated(self, connection: object) -> None:
        if connection is self._connection:
            self._lose("the lock's connection was closed")

    def _lose(self, reason: str) -> None:
        was_held = self.held
        self.held = False
        self.lost_reason = reason
        self.lost.set()
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                connection.terminate()
        if was_held:
            log.warning("the outbox relay lost its lock: %s", reason)


def relay_lock_for(
    engine: AsyncEngine, *, check_s: float = 1.0, idle_timeout_s: float = 10.0
) -> AdvisoryLock | None:
    """The relay lock of `engine`'s database; None on SQLite, which has one relay by design."""
    if engine.dialect.name != "postgresql":
        return None
    url = make_url(engine.url.render_as_string(hide_password=False)).set(drivername="postgresql")
    return AdvisoryLock(
        url.render_as_string(hide_password=False),
        timeout_s=max(2.0, 2 * check_s),
        idle_timeout_s=max(idle_timeout_s, 3 * check_s),
    )
