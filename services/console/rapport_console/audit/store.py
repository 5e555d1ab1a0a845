"""The audit log: every privileged action an operator takes in the console, by whom, on
what, when, and how it ended.

It is a table of its own beside the access log: the access log answers "who saw this
customer's data" for the privacy officer, this one answers "who changed what" (a partner
registered or deleted, an operator created, disabled or enabled, a campaign created or
launched, a customer erased). An attempt is recorded whether it was done, refused (by the
form's CSRF token, the role check, invalid input, a missing confirmation, or a service's
4xx) or failed (a service that did not answer), with the status the operator got. Old
entries go after `CONSOLE_AUDIT_RETENTION_DAYS` (`retention`).
"""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_console.audit.models import DETAIL_LENGTH, Action, AuditEntry, Outcome
from rapport_console.operators.models import Operator
from rapport_events.db import SessionFactory, transaction

PAGE = 50


def outcome_of(status: int) -> Outcome:
    """How an action ended, from the status the operator got."""
    if status >= 500:
        return Outcome.failed
    return Outcome.refused if status >= 400 else Outcome.done


def entry(
    operator: Operator, action: Action, target: str, status: int, detail: str = ""
) -> AuditEntry:
    """The entry of an attempt that ended with `status`."""
    return AuditEntry(
        operator=operator.username,
        role=operator.role,
        action=action,
        target=target[:200],
        outcome=outcome_of(status),
        status=status,
        detail=detail[:DETAIL_LENGTH],
    )


def record(
    session: AsyncSession,
    operator: Operator,
    action: Action,
    target: str,
    status: int,
    detail: str = "",
) -> None:
    """Add an entry to the caller's transaction."""
    session.add(entry(operator, action, target, status, detail))


async def write(sessions: SessionFactory, audit_entry: AuditEntry) -> None:
    """Store an entry in a transaction of its own (a refusal before the page's own)."""
    async with transaction(sessions) as session:
        session.add(audit_entry)


async def recent(
    session: AsyncSession,
    operator: str | None = None,
    action: Action | None = None,
    before: int | None = None,
    limit: int = PAGE,
) -> list[AuditEntry]:
    """The newest entries (older than the entry `before`), of one operator and action or all."""
    query = select(AuditEntry)
    if operator:
        query = query.where(AuditEntry.operator == operator)
    if action:
        query = query.where(AuditEntry.action == action)
    if before is not None:
        query = query.where(col(AuditEntry.id) < before)
    # Ids grow in the order entries were stored, so they are a stable cursor.
    query = query.order_by(col(AuditEntry.id).desc()).limit(min(limit, PAGE + 1))
    return list((await session.exec(query)).all())
