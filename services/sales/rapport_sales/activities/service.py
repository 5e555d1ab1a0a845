"""Tasks, meetings, calls, notes and logged e-mails, per account and per contact.

Every activity is published as activity.logged once per contact it is about, so it shows
on the customer's timeline in profile; an activity about an account alone is published
under the account's subject.
"""

from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from icalendar import Calendar, vCalAddress, vText
from icalendar import Event as CalendarEvent

from rapport_events.base import utcnow
from rapport_events.types import ActivityLogged
from rapport_sales.accounts.service import get_account
from rapport_sales.activities.models import (
    ActivityCreate,
    ActivityPublic,
    MeetingCreate,
    SalesActivity,
    SalesActivityContact,
    TaskCreate,
    TaskUpdate,
)
from rapport_sales.activities.store import ActivityFilter
from rapport_sales.errors import InvalidRequest, NotFound
from rapport_sales.shared import Page, account_subject, aware
from rapport_sales.unit_of_work import SalesUnitOfWork

PRODID = "-//Rapport//Sales//EN"


async def record(
    uow: SalesUnitOfWork, activity: SalesActivity, customer_ids: Sequence[str]
) -> ActivityPublic:
    """Store the activity and its contacts; publish activity.logged for each."""
    if activity.account_id is not None:
        await get_account(uow, activity.account_id)
    people = list(dict.fromkeys(customer_ids))
    if people:
        missing = set(people) - await uow.customers.known_ids_among(people)
        if missing:
            raise InvalidRequest(
                f"unknown customer {sorted(missing)[0]} (not registered in profile)"
            )
    uow.activities.add(activity)
    for customer_id in people:
        uow.activities.add(SalesActivityContact(activity_id=activity.id, customer_id=customer_id))
    subjects = people or ([account_subject(activity.account_id)] if activity.account_id else [])
    await uow.outbox.publish([_logged(activity, subject) for subject in subjects])
    view = ActivityPublic.model_validate(activity)
    view.customer_ids = people
    return view


def _logged(activity: SalesActivity, subject: str) -> ActivityLogged:
    return ActivityLogged(
        customer_id=subject,
        occurred_at=activity.occurred_at,
        activity_id=activity.id,
        kind=activity.kind,  # type: ignore[arg-type]
        subject=activity.subject,
        account_id=activity.account_id,
        owner=activity.owner,
        due_at=activity.due_at,
        starts_at=activity.starts_at,
    )


async def log_activity(uow: SalesUnitOfWork, body: ActivityCreate) -> ActivityPublic:
    """A call or a note."""
    now = utcnow()
    activity = SalesActivity(
        kind=body.kind,
        account_id=body.account_id,
        subject=body.subject,
        body=body.body,
        owner=body.owner,
        occurred_at=body.occurred_at or now,
        created_at=now,
    )
    return await record(uow, activity, body.customer_ids)


async def create_task(uow: SalesUnitOfWork, body: TaskCreate) -> ActivityPublic:
    """A task for an owner, due at a time."""
    now = utcnow()
    activity = SalesActivity(
        kind="task",
        account_id=body.account_id,
        subject=body.subject,
        body=body.body,
        owner=body.owner,
        occurred_at=now,
        due_at=body.due_at,
        created_at=now,
    )
    return await record(uow, activity, body.customer_ids)


async def get_activity(
    uow: SalesUnitOfWork, activity_id: str, kind: str | None = None
) -> SalesActivity:
    """The activity (of that kind), or NotFound."""
    activity = await uow.activities.get_activity(activity_id)
    if activity is None or (kind is not None and activity.kind != kind):
        raise NotFound(f"no {kind or 'activity'} {activity_id}")
    return activity


async def update_task(uow: SalesUnitOfWork, task_id: str, body: TaskUpdate) -> ActivityPublic:
    """Mark a task done or not done, or move its due time."""
    task = await get_activity(uow, task_id, "task")
    if body.done is not None:
        task.done_at = (task.done_at or utcnow()) if body.done else None
    if body.due_at is not None:
        task.due_at = body.due_at
    uow.activities.add(task)
    return await activity_view(uow, task)


async def overdue_tasks(
    uow: SalesUnitOfWork, owner: str | None, now: datetime, limit: int
) -> list[ActivityPublic]:
    """Tasks not done whose due time has passed, oldest due first, for one owner or all."""
    return await _views(uow, await uow.activities.overdue_tasks(owner, now, limit))


async def create_meeting(uow: SalesUnitOfWork, body: MeetingCreate) -> ActivityPublic:
    """A meeting; attendees who are known customers become its contacts."""
    now = utcnow()
    addresses = list(dict.fromkeys(address.strip().lower() for address in body.attendees))
    by_address = await uow.customers.customer_ids_by_email(addresses)
    activity = SalesActivity(
        kind="meeting",
        account_id=body.account_id,
        subject=body.subject,
        body=body.body,
        owner=body.owner,
        occurred_at=body.starts_at,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        location=body.location,
        addresses=addresses,
        created_at=now,
    )
    people = [*body.customer_ids, *by_address.values()]
    return await record(uow, activity, people)


def meeting_ics(meeting: SalesActivity, organizer: str | None = None) -> bytes:
    """The meeting as an RFC 5545 calendar with one VEVENT."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = CalendarEvent()
    event.add("uid", f"{meeting.id}@rapport-sales")
    event.add("dtstamp", aware(meeting.created_at))
    assert meeting.starts_at is not None and meeting.ends_at is not None
    event.add("dtstart", aware(meeting.starts_at))
    event.add("dtend", aware(meeting.ends_at))
    event.add("summary", meeting.subject)
    if meeting.body:
        event.add("description", meeting.body)
    if meeting.location:
        event.add("location", vText(meeting.location))
    if organizer:
        event.add("organizer", vCalAddress(f"mailto:{organizer}"))
    for address in meeting.addresses:
        attendee = vCalAddress(f"mailto:{address}")
        attendee.params["ROLE"] = vText("REQ-PARTICIPANT")
        event.add("attendee", attendee, encode=False)
    calendar.add_component(event)
    return calendar.to_ical()


# --- logged e-mails --------------------------------------------------------------------------


def parse_email(raw: bytes) -> EmailMessage:
    """An RFC 5322 message, or InvalidRequest saying why it is not one we can log."""
    if not raw.strip():
        raise InvalidRequest("the e-mail is empty")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    if message.defects:
        raise InvalidRequest(f"the e-mail does not parse: {type(message.defects[0]).__name__}")
    try:
        senders = _addresses(message, "from")
        recipients = _addresses(message, "to", "cc")
    except (ValueError, TypeError, IndexError) as error:
        raise InvalidRequest(f"the e-mail's address headers do not parse: {error}") from error
    if len(senders) != 1:
        raise InvalidRequest("the e-mail needs exactly one From address")
    if not recipients:
        raise InvalidRequest("the e-mail needs a To or Cc address")
    return message


def _addresses(message: EmailMessage, *headers: str) -> list[str]:
    found: list[str] = []
    for header in headers:
        values = message.get_all(header) or []
        for _name, address in getaddresses([str(value) for value in values]):
            if not address:
                continue
            Address(addr_spec=address)  # refuses what is not an addr-spec
            found.append(address.lower())
    return found


def _email_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        return ""
    return content[:20_000] if isinstance(content, str) else ""


def _sent_at(message: EmailMessage, fallback: datetime) -> datetime:
    value = message.get("date")
    if value is None:
        return fallback
    try:
        sent = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return fallback
    return aware(sent)


async def log_email(
    uow: SalesUnitOfWork, raw: bytes, account_id: str | None, owner: str | None
) -> ActivityPublic:
    """Log a raw e-mail; its From, To and Cc link it to contacts by address, and to the
    account named or, failing that, to the account of the addresses' domain."""
    message = parse_email(raw)
    addresses = list(dict.fromkeys(_addresses(message, "from") + _addresses(message, "to", "cc")))
    people = await uow.customers.customer_ids_by_email(addresses)
    account_id = account_id or await _account_by_domain(uow, addresses)
    now = utcnow()
    subject = str(message.get("subject") or "(no subject)").strip()[:500] or "(no subject)"
    activity = SalesActivity(
        kind="email",
        account_id=account_id,
        subject=subject,
        body=_email_body(message),
        owner=owner,
        occurred_at=_sent_at(message, now),
        addresses=addresses,
        message_id=str(message.get("message-id") or "").strip()[:998] or None,
        created_at=now,
    )
    if account_id is None and not people:
        raise InvalidRequest("no account or contact matches the e-mail's addresses")
    return await record(uow, activity, list(people.values()))


async def _account_by_domain(uow: SalesUnitOfWork, addresses: Sequence[str]) -> str | None:
    domains = {address.rsplit("@", 1)[1] for address in addresses if "@" in address}
    if not domains:
        return None
    return await uow.accounts.account_id_by_domain(domains)


# --- listings --------------------------------------------------------------------------------


async def activity_view(uow: SalesUnitOfWork, activity: SalesActivity) -> ActivityPublic:
    return (await _views(uow, [activity]))[0]


async def _views(uow: SalesUnitOfWork, activities: list[SalesActivity]) -> list[ActivityPublic]:
    ids = [activity.id for activity in activities]
    links: dict[str, list[str]] = {activity_id: [] for activity_id in ids}
    if ids:
        for link in await uow.activities.contact_links_of(ids):
            links[link.activity_id].append(link.customer_id)
    views = []
    for activity in activities:
        view = ActivityPublic.model_validate(activity)
        view.customer_ids = sorted(links[activity.id])
        views.append(view)
    return views


async def list_activities(
    uow: SalesUnitOfWork,
    *,
    account_id: str | None,
    customer_id: str | None,
    kind: str | None,
    limit: int,
    cursor: str | None,
) -> Page[ActivityPublic]:
    """Activities newest first, of an account (its own and its contacts') or of a contact."""
    if account_id is not None:
        await get_account(uow, account_id)
    where = ActivityFilter(account_id, customer_id, kind)
    rows, next_cursor = await uow.activities.list_activities(where, limit, cursor)
    return Page(items=await _views(uow, rows), next_cursor=next_cursor)


async def forget_person(uow: SalesUnitOfWork, customer_ids: list[str], emails: list[str]) -> None:
    """Erasure: e-mails with the person lose their text, every activity loses the link to
    them and their address; the activities themselves stay with the account."""
    for activity in await uow.activities.activities_about(customer_ids, emails):
        if activity.kind == "email":
            activity.subject, activity.body, activity.message_id = "(erased)", "", None
        activity.addresses = [address for address in activity.addresses if address not in emails]
        uow.activities.add(activity)
    await uow.activities.unlink_customers(customer_ids)
