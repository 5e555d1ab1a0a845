"""Operator accounts an admin creates in the console, kept in its database beside the
configured ones (CONSOLE_OPERATORS), and the look-ups that join the two.

A configured account wins over a stored one of the same name and cannot be disabled or
enabled here (it lives in the deployment's settings). A disabled account is kept, so its
name is never given to someone else and the access and audit logs' entries keep meaning
whom they meant, and so it can be enabled again as it was; it is looked up on every
request, so disabling it logs it out at once.
"""

from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_console.operators.models import Operator, OperatorRecord
from rapport_console.operators.service import Directory, verify_password
from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, read_transaction, transaction


async def stored(session: AsyncSession) -> list[OperatorRecord]:
    """Every account created in the console, by name."""
    query = select(OperatorRecord).order_by(col(OperatorRecord.username))
    return list((await session.exec(query)).all())


async def create(sessions: SessionFactory, record: OperatorRecord, *with_rows: SQLModel) -> bool:
    """Store a new account (and `with_rows`, its audit entry) in a transaction of its own;
    False when the name is taken."""
    try:
        async with transaction(sessions) as session:
            session.add(record)
            session.add_all(with_rows)
    except IntegrityError:
        return False
    return True


async def disable(session: AsyncSession, username: str, by: str) -> OperatorRecord | None:
    """Disable a stored account (once); None when there is none of that name."""
    record = await session.get(OperatorRecord, username)
    if record is not None and record.disabled_at is None:
        record.disabled_at, record.disabled_by = utcnow(), by
        session.add(record)
    return record


async def enable(session: AsyncSession, username: str) -> OperatorRecord | None:
    """Enable a disabled stored account again, with its role; None when there is none."""
    record = await session.get(OperatorRecord, username)
    if record is not None and record.disabled_at is not None:
        record.disabled_at, record.disabled_by = None, None
        session.add(record)
    return record


async def find(directory: Directory, sessions: SessionFactory, username: str) -> Operator | None:
    """The operator of a session: a configured account, else an active stored one."""
    configured = directory.get(username)
    if configured is not None:
        return configured
    async with read_transaction(sessions) as session:
        record = await session.get(OperatorRecord, username)
    return record.operator() if record else None


async def authenticate(
    directory: Directory, sessions: SessionFactory, username: str, password: str
) -> Operator | None:
    """The operator when the password matches a configured or active stored account."""
    # argon2 takes tens of milliseconds of CPU: off the event loop.
    if directory.get(username) is not None:
        return await to_thread.run_sync(directory.authenticate, username, password)
    async with read_transaction(sessions) as session:
        record = await session.get(OperatorRecord, username)
    operator = record.operator() if record else None
    # An unknown or disabled name costs a verification too, so timing does not tell.
    known_hash = record.password_hash if operator and record else None
    matches = await to_thread.run_sync(verify_password, known_hash, password)
    return operator if matches else None
