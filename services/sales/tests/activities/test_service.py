"""The activities use cases against in-memory stores: one activity.logged per contact it is
about, tasks and the overdue list, meetings, logged e-mails, documents, and erasure."""

from datetime import timedelta
from pathlib import Path

import pytest

from rapport_events.base import utcnow
from rapport_events.types import ActivityLogged
from rapport_sales.accounts.models import SalesAccount, SalesContact
from rapport_sales.activities import documents, service
from rapport_sales.activities.models import (
    ActivityCreate,
    MeetingCreate,
    SalesActivity,
    SalesDocument,
    TaskCreate,
    TaskUpdate,
)
from rapport_sales.customers.models import SalesCustomer
from rapport_sales.errors import InvalidRequest, NotFound
from rapport_sales.testing import FakeSalesUnitOfWork


def an_account(uow: FakeSalesUnitOfWork, domain: str | None = None) -> str:
    now = utcnow()
    account = SalesAccount(name="Acme", domain=domain, created_at=now, updated_at=now)
    uow.rows.add(account)
    return account.id


def a_customer(uow: FakeSalesUnitOfWork, customer_id: str, email: str | None = None) -> str:
    uow.rows.add(SalesCustomer(customer_id=customer_id, email=email, updated_at=utcnow()))
    return customer_id


class TestLoggingAnActivity:
    async def test_each_contact_gets_an_event_under_their_own_subject(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        ada, bob = a_customer(uow, "ada"), a_customer(uow, "bob")
        body = ActivityCreate(kind="call", subject="Intro", customer_ids=[ada, bob, ada])

        view = await service.log_activity(uow, body)

        assert view.customer_ids == ["ada", "bob"]
        logged = uow.outbox.published(ActivityLogged)
        assert [(e.customer_id, e.kind, e.activity_id) for e in logged] == [
            ("ada", "call", view.id),
            ("bob", "call", view.id),
        ]

    async def test_an_activity_about_an_account_alone_is_published_under_the_account(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        account = an_account(uow)

        await service.log_activity(
            uow, ActivityCreate(kind="note", subject="x", account_id=account)
        )

        assert [e.customer_id for e in uow.outbox.published(ActivityLogged)] == [
            f"account:{account}"
        ]

    async def test_an_unknown_customer_or_account_stores_and_publishes_nothing(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        with pytest.raises(InvalidRequest, match="unknown customer nobody"):
            await service.log_activity(
                uow, ActivityCreate(kind="call", subject="x", customer_ids=["nobody"])
            )
        with pytest.raises(NotFound):
            await service.log_activity(
                uow, ActivityCreate(kind="call", subject="x", account_id="nope")
            )
        assert (uow.rows.all(SalesActivity), uow.outbox.events) == ([], [])

    async def test_an_account_s_listing_holds_its_contacts_activities_too(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        account, ada = an_account(uow), a_customer(uow, "ada")
        uow.rows.add(
            SalesContact(account_id=account, customer_id=ada, source="manual", linked_at=utcnow())
        )
        await service.log_activity(
            uow, ActivityCreate(kind="note", subject="own", account_id=account)
        )
        await service.log_activity(
            uow, ActivityCreate(kind="call", subject="hers", customer_ids=[ada])
        )
        a_customer(uow, "eve")
        await service.log_activity(
            uow, ActivityCreate(kind="call", subject="not", customer_ids=["eve"])
        )

        page = await service.list_activities(
            uow, account_id=account, customer_id=None, kind=None, limit=10, cursor=None
        )
        calls = await service.list_activities(
            uow, account_id=account, customer_id=None, kind="call", limit=10, cursor=None
        )

        assert sorted(item.subject for item in page.items) == ["hers", "own"]
        assert [item.subject for item in calls.items] == ["hers"]


class TestTasks:
    async def test_done_and_undone_and_moved(self, uow: FakeSalesUnitOfWork) -> None:
        due = utcnow() + timedelta(days=1)
        task = await service.create_task(
            uow,
            TaskCreate(subject="Call back", owner="rep:a", due_at=due, account_id=an_account(uow)),
        )

        done = await service.update_task(uow, task.id, TaskUpdate(done=True))
        again = await service.update_task(uow, task.id, TaskUpdate(done=True))
        undone = await service.update_task(uow, task.id, TaskUpdate(done=False, due_at=due))

        assert done.done_at is not None and again.done_at == done.done_at
        assert undone.done_at is None

    async def test_only_a_task_is_a_task(self, uow: FakeSalesUnitOfWork) -> None:
        note = await service.log_activity(
            uow, ActivityCreate(kind="note", subject="x", account_id=an_account(uow))
        )

        with pytest.raises(NotFound, match="no task"):
            await service.update_task(uow, note.id, TaskUpdate(done=True))

    async def test_the_overdue_list_is_past_due_not_done_oldest_first_per_owner(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        account, now = an_account(uow), utcnow()
        for subject, owner, hours in [
            ("late", "rep:a", -2),
            ("later", "rep:a", -5),
            ("soon", "rep:a", 3),
            ("other", "rep:b", -1),
        ]:
            await service.create_task(
                uow,
                TaskCreate(
                    subject=subject,
                    owner=owner,
                    due_at=now + timedelta(hours=hours),
                    account_id=account,
                ),
            )
        done = (await service.overdue_tasks(uow, "rep:b", now, 10))[0]
        await service.update_task(uow, done.id, TaskUpdate(done=True))

        assert [t.subject for t in await service.overdue_tasks(uow, "rep:a", now, 10)] == [
            "later",
            "late",
        ]
        assert await service.overdue_tasks(uow, "rep:b", now, 10) == []
        assert len(await service.overdue_tasks(uow, None, now, 1)) == 1


class TestMeetings:
    async def test_attendees_known_by_address_become_its_contacts(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        a_customer(uow, "ada", "ada@acme.example")
        starts = utcnow() + timedelta(days=1)

        meeting = await service.create_meeting(
            uow,
            MeetingCreate(
                subject="Demo",
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                attendees=["ADA@acme.example", "zed@else.example"],
                account_id=an_account(uow),
            ),
        )

        assert meeting.customer_ids == ["ada"]
        assert meeting.addresses == ["ada@acme.example", "zed@else.example"]
        stored = await service.get_activity(uow, meeting.id, "meeting")
        calendar = service.meeting_ics(stored).decode()
        assert "SUMMARY:Demo" in calendar and "mailto:zed@else.example" in calendar


EMAIL = b"""From: Ada <ada@acme.example>
To: rep@rapport.example
Cc: Bob <bob@bolt.example>
Subject: Renewal
Message-ID: <m1@acme.example>
Date: Tue, 01 Dec 2026 10:00:00 +0000

Shall we renew?
"""


class TestLoggedEmails:
    async def test_addresses_link_contacts_and_the_domain_finds_the_account(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        a_customer(uow, "ada", "ada@acme.example")
        account = an_account(uow, domain="bolt.example")

        logged = await service.log_email(uow, EMAIL, None, "rep:a")

        assert (logged.kind, logged.subject, logged.account_id) == ("email", "Renewal", account)
        assert logged.customer_ids == ["ada"]
        assert logged.body.strip() == "Shall we renew?"
        assert (logged.message_id, logged.occurred_at.day) == ("<m1@acme.example>", 1)
        assert [e.customer_id for e in uow.outbox.published(ActivityLogged)] == ["ada"]

    async def test_an_e_mail_nobody_matches_is_refused(self, uow: FakeSalesUnitOfWork) -> None:
        with pytest.raises(InvalidRequest, match="no account or contact"):
            await service.log_email(uow, EMAIL, None, None)

    @pytest.mark.parametrize(
        ("raw", "why"),
        [
            (b"  ", "empty"),
            (b"To: a@b.example\n\nhi", "exactly one From"),
            (b"From: a@b.example\n\nhi", "a To or Cc"),
        ],
    )
    def test_what_is_not_a_loggable_e_mail_says_why(self, raw: bytes, why: str) -> None:
        with pytest.raises(InvalidRequest, match=why):
            service.parse_email(raw)


class TestDocuments:
    async def test_the_bytes_go_to_the_folder_and_the_document_is_an_activity(
        self, uow: FakeSalesUnitOfWork, tmp_path: Path
    ) -> None:
        account = an_account(uow)

        view = await documents.attach(
            uow,
            tmp_path,
            b"%PDF-1.7 ...",
            filename="quote.pdf",
            content_type="application/pdf",
            allowed=["application/pdf"],
            account_id=account,
            customer_ids=[],
            owner=None,
        )

        assert (view.kind, view.subject) == ("document", "quote.pdf")
        assert (tmp_path / view.id).read_bytes() == b"%PDF-1.7 ..."
        assert (await documents.get_document(uow, view.id)).size == 12

    @pytest.mark.parametrize(
        ("content_type", "data", "why"),
        [
            ("image/gif", b"GIF89a", "not an allowed type"),
            ("application/pdf", b"", "empty"),
            ("application/pdf", b"<html>", "not a application/pdf"),
            ("text/plain", b"\xff\xfe", "UTF-8"),
        ],
    )
    def test_the_bytes_must_be_what_the_type_says(
        self, content_type: str, data: bytes, why: str
    ) -> None:
        with pytest.raises(InvalidRequest, match=why):
            documents.check_content(content_type, data, ["application/pdf", "text/plain"])

    @pytest.mark.parametrize("name", ["", "../etc/passwd", "a\nb", "x" * 256])
    def test_a_file_name_is_a_plain_name(self, name: str) -> None:
        with pytest.raises(InvalidRequest):
            documents.check_filename(name)


class TestErasure:
    async def test_e_mails_lose_their_text_and_the_person_leaves_every_activity(
        self, uow: FakeSalesUnitOfWork, tmp_path: Path
    ) -> None:
        a_customer(uow, "ada", "ada@acme.example")
        account = an_account(uow, domain="bolt.example")
        email = await service.log_email(uow, EMAIL, None, None)
        alone = await documents.attach(
            uow,
            tmp_path,
            b"notes",
            filename="notes.txt",
            content_type="text/plain",
            allowed=["text/plain"],
            account_id=None,
            customer_ids=["ada"],
            owner=None,
        )

        await documents.forget_person(uow, tmp_path, ["ada"])
        await service.forget_person(uow, ["ada"], ["ada@acme.example"])

        kept = await service.get_activity(uow, email.id)
        assert (kept.subject, kept.body, kept.message_id) == ("(erased)", "", None)
        assert kept.addresses == ["rep@rapport.example", "bob@bolt.example"]
        assert kept.account_id == account
        assert (await service.activity_view(uow, kept)).customer_ids == []
        assert uow.rows.get(SalesDocument, alone.id) is None
        assert not (tmp_path / alone.id).exists()
