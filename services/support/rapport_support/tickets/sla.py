"""SLA targets per priority and their breaches: due times fixed when a ticket opens or its
priority changes, and each missed target recorded and published once."""

from datetime import datetime, timedelta

from rapport_events.base import utcnow
from rapport_events.types import Priority, TicketSlaBreached
from rapport_support.errors import InvalidRequest
from rapport_support.settings import Settings
from rapport_support.shared import aware
from rapport_support.tickets.models import (
    PRIORITIES,
    SlaPolicyPublic,
    SlaPolicyUpdate,
    SupportSlaBreach,
    SupportSlaPolicy,
    SupportTicket,
)
from rapport_support.unit_of_work import SupportUnitOfWork


async def sla_policies(uow: SupportUnitOfWork, settings: Settings) -> list[SlaPolicyPublic]:
    """The first-response and resolution targets of every priority."""
    stored = {policy.priority: policy for policy in await uow.tickets.policies()}
    return [_policy_view(settings, priority, stored.get(priority)) for priority in PRIORITIES]


def _policy_view(
    settings: Settings, priority: Priority, stored: SupportSlaPolicy | None
) -> SlaPolicyPublic:
    if stored is not None:
        return SlaPolicyPublic(
            priority=priority,
            first_response_minutes=stored.first_response_minutes,
            resolution_minutes=stored.resolution_minutes,
            configured=True,
        )
    return SlaPolicyPublic(
        priority=priority,
        first_response_minutes=settings.sla_first_response_minutes.get(priority, 240),
        resolution_minutes=settings.sla_resolution_minutes.get(priority, 4_320),
        configured=False,
    )


async def set_sla_policy(
    uow: SupportUnitOfWork,
    settings: Settings,
    priority: Priority,
    update: SlaPolicyUpdate,
    now: datetime | None = None,
) -> SlaPolicyPublic:
    """Set the targets of a priority; tickets opened or re-prioritised later use them."""
    if update.resolution_minutes < update.first_response_minutes:
        raise InvalidRequest("resolution_minutes cannot be shorter than first_response_minutes")
    policy = await uow.tickets.get_policy(priority)
    if policy is None:
        policy = SupportSlaPolicy(
            priority=priority, first_response_minutes=0, resolution_minutes=0, updated_at=utcnow()
        )
    policy.first_response_minutes = update.first_response_minutes
    policy.resolution_minutes = update.resolution_minutes
    policy.updated_at = now or utcnow()
    uow.tickets.add(policy)
    await uow.flush()
    return _policy_view(settings, priority, policy)


async def due_times(
    uow: SupportUnitOfWork, settings: Settings, priority: Priority, opened_at: datetime
) -> tuple[datetime, datetime]:
    policy = _policy_view(settings, priority, await uow.tickets.get_policy(priority))
    return (
        opened_at + timedelta(minutes=policy.first_response_minutes),
        opened_at + timedelta(minutes=policy.resolution_minutes),
    )


async def publish_sla_breach(
    uow: SupportUnitOfWork, ticket: SupportTicket, breach: SupportSlaBreach
) -> None:
    """Put ticket.sla.breached on the log, in the transaction that records the breach."""
    await uow.outbox.publish(
        [
            TicketSlaBreached(
                customer_id=ticket.customer_id,
                occurred_at=aware(breach.breached_at),
                ticket_id=ticket.id,
                target=breach.target,  # type: ignore[arg-type]
                priority=breach.priority,  # type: ignore[arg-type]
                due_at=aware(breach.due_at),
                breached_at=aware(breach.breached_at),
            ),
        ]
    )


async def _record_breach(
    uow: SupportUnitOfWork, ticket: SupportTicket, target: str, now: datetime
) -> SupportSlaBreach | None:
    if await uow.tickets.get_breach(ticket.id, target) is not None:
        return None
    due = ticket.first_response_due_at if target == "first_response" else ticket.resolution_due_at
    breach = SupportSlaBreach(
        ticket_id=ticket.id, target=target, priority=ticket.priority, due_at=due, breached_at=now
    )
    uow.tickets.add(breach)
    await uow.flush()
    await publish_sla_breach(uow, ticket, breach)
    return breach


async def record_due_breaches(
    uow: SupportUnitOfWork, now: datetime | None = None, limit: int = 500
) -> list[SupportSlaBreach]:
    """Record (and publish) every SLA target missed by now that has no breach yet."""
    now = now or utcnow()
    recorded = []
    for ticket, target in await uow.tickets.overdue_tickets(now, limit):
        breach = await _record_breach(uow, ticket, target, now)
        if breach is not None:
            recorded.append(breach)
    return recorded


async def breach_if_late(
    uow: SupportUnitOfWork, ticket: SupportTicket, target: str, now: datetime
) -> None:
    # Met after its due time but before the monitor's next pass: still a breach.
    due = ticket.first_response_due_at if target == "first_response" else ticket.resolution_due_at
    if now > aware(due):
        await _record_breach(uow, ticket, target, now)
