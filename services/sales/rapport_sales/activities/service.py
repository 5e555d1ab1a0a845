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
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.types import ActivityLogged
from rapport_sales.accounts import store as accounts_store
from rapport_sales.accounts.service import get_account
from rapport_sales.activities import store
from rapport_sales.activities.models import (
    ActivityCreate,
    ActivityPublic,
    MeetingCreate,
    SalesActivity,
    SalesActivityContact,
    TaskCreate,
    TaskUpdate,
)
from rapport_sales.customers import store as customers_store
from rapport_sales.errors import InvalidRequest, NotFound
from rapport_sales.shared import Page, account_subject, aware, publish

PRODID = "-//Rapport//Sales//EN"


async def record(
    session: AsyncSession, activity: SalesActivity, customer_ids: Sequence[str], topic: str
) -> ActivityPublic:
    """Store the activity and its contacts; publish activity.logged for each."""
    if activity.account_id is not None:
        await get_account(session, activity.account_id)
    people = list(dict.fromkeys(customer_ids))
    if people:
        missing = set(people) - await customers_store.known_ids_among(session, people)
        if missing:
            raise InvalidRequest(
                f"unknown customer {sorted(missing)[0]} (not registered in profile)"
            )
    session.add(activity)
    for customer_id in people:
        session.add(SalesActivityContact(activity_id=activity.id, customer_id=customer_id))
    subjects = people or ([account_subject(activity.account_id)] if activity.account_id else [])
    await publish(session, [_logged(activity, subject) for subject in subjects], topic)
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


async def log_activity(session: AsyncSession, body: ActivityCreate, topic: str) -> ActivityPublic:
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
    return await record(session, activity, body.customer_ids, topic)


async def create_task(session: AsyncSession, body: TaskCreate, topic: str) -> ActivityPublic:
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
    return await record(session, activity, body.customer_ids, topic)


async def get_activity(
    session: AsyncSession, activity_id: str, kind: str | None = None
) -> SalesActivity:
    """The activity (of that kind), or NotFound."""
    activity = await store.get_activity(session, activity_id)
    if activity is None or (kind is not None and activity.kind != kind):
        raise NotFound(f"no {kind or 'activity'} {activity_id}")
    return activity


async def update_task(session: AsyncSession, task_id: str, body: TaskUpdate) -> ActivityPublic:
    """Mark a task done or not done, or move its due time."""
    task = await get_activity(session, task_id, "task")
    if body.done is not None:
        task.done_at = (task.done_at or utcnow()) if body.done else None
    if body.due_at is not None:
        task.due_at = body.due_at
    session.add(task)
    return await activity_view(session, task)


async def overdue_tasks(
    session: AsyncSession, owner: str | None, now: datetime, limit: int
) -> list[ActivityPublic]:
    """Tasks not done whose due time has passed, oldest due first, for one owner or all."""
    return await _views(session, await store.overdue_tasks(session, owner, now, limit))


async def create_meeting(session: AsyncSession, body: MeetingCreate, topic: str) -> ActivityPublic:
    """A meeting; attendees who are known customers become its contacts."""
    now = utcnow()
    addresses = list(dict.fromkeys(address.strip().lower() for address in body.attendees))
    by_address = await customers_store.customer_ids_by_email(session, addresses)
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
    return await record(session, activity, people, topic)


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
    session: AsyncSession, raw: bytes, account_id: str | None, owner: str | None, topic: str
) -> ActivityPublic:
    """Log a raw e-mail; its From, To and Cc link it to contacts by address, and to the
    account named or, failing that, to the account of the addresses' domain."""
    message = parse_email(raw)
    addresses = list(dict.fromkeys(_addresses(message, "from") + _addresses(message, "to", "cc")))
    people = await customers_store.customer_ids_by_email(session, addresses)
    account_id = account_id or await _account_by_domain(session, addresses)
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
    return await record(session, activity, list(people.values()), topic)


async def _account_by_domain(session: AsyncSession, addresses: Sequence[str]) -> str | None:
    domains = {address.rsplit("@", 1)[1] for address in addresses if "@" in address}
    if not domains:
        return None
    return await accounts_store.account_id_by_domain(session, domains)


# --- listings --------------------------------------------------------------------------------


async def activity_view(session: AsyncSession, activity: SalesActivity) -> ActivityPublic:
    return (await _views(session, [activity]))[0]


async def _views(session: AsyncSession, activities: list[SalesActivity]) -> list[ActivityPublic]:
    ids = [activity.id for activity in activities]
    links: dict[str, list[str]] = {activity_id: [] for activity_id in ids}
    if ids:
        for link in await store.contact_links_of(session, ids):
            links[link.activity_id].append(link.customer_id)
    views = []
    for activity in activities:
        view = ActivityPublic.model_validate(activity)
        view.customer_ids = sorted(links[activity.id])
        views.append(view)
    return views


async def list_activities(
    session: AsyncSession,
    *,
    account_id: str | None,
    customer_id: str | None,
    kind: str | None,
    limit: int,
    cursor: str | None,
) -> Page[ActivityPublic]:
    """Activities newest first, of an account (its own and its contacts') or of a contact."""
    if account_id is not None:
        await get_account(session, account_id)
    where = store.ActivityFilter(account_id, customer_id, kind)
    rows, next_cursor = await store.list_activities(session, where, limit, cursor)
    return Page(items=await _views(session, rows), next_cursor=next_cursor)


async def forget_person(session: AsyncSession, customer_ids: list[str], emails: list[str]) -> None:
    """Erasure: e-mails with the person lose their text, every activity loses the link to
    them and their address; the activities themselves stay with the account."""
    for activity in await store.activities_about(session, customer_ids, emails):
        if activity.kind == "email":
            activity.subject, activity.body, activity.message_id = "(erased)", "", None
        activity.addresses = [address for address in activity.addresses if address not in emails]
        session.add(activity)
    await store.unlink_customers(session, customer_ids)
