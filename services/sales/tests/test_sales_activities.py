"""Tasks, meetings (.ics), calls, notes and raw e-mails per account and contact; the
account timeline joins sales' own activity with the contacts' timelines in profile."""

from datetime import timedelta

import httpx
from fastapi import FastAPI
from icalendar import Calendar
from sales_testing import AUTH, ProfileStandIn, apply, outbox_events, person

from rapport_events.base import utcnow
from rapport_events.types import ActivityLogged

RAW = b"""From: Ada Lovelace <ada@acme.example>
To: Grace <grace@rapport.example>
Cc: someone@elsewhere.example
Subject: Quote for 20 machines
Date: Tue, 01 Dec 2026 10:00:00 +0000
Message-ID: <q-20@acme.example>
Content-Type: text/plain; charset=utf-8

Could you send the quote by Friday?
"""


async def an_account(client: httpx.AsyncClient, **fields: str) -> str:
    reply = await client.post("/accounts", json={"name": "Acme", **fields}, headers=AUTH)
    return str(reply.json()["id"])


class TestTasks:
    async def test_overdue_tasks_per_owner_leave_the_list_when_done(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        account = await an_account(client)
        now = utcnow()
        late = await client.post(
            "/tasks",
            json={
                "subject": "Call back",
                "account_id": account,
                "owner": "ann",
                "due_at": (now - timedelta(hours=2)).isoformat(),
            },
            headers=AUTH,
        )
        await client.post(
            "/tasks",
            json={
                "subject": "Later",
                "account_id": account,
                "owner": "ann",
                "due_at": (now + timedelta(days=2)).isoformat(),
            },
            headers=AUTH,
        )
        await client.post(
            "/tasks",
            json={
                "subject": "Bob's",
                "account_id": account,
                "owner": "bob",
                "due_at": (now - timedelta(days=1)).isoformat(),
            },
            headers=AUTH,
        )

        anns = (await client.get("/tasks/overdue?owner=ann", headers=AUTH)).json()
        everyone = (await client.get("/tasks/overdue", headers=AUTH)).json()
        done = await client.patch(f"/tasks/{late.json()['id']}", json={"done": True}, headers=AUTH)
        after = (await client.get("/tasks/overdue?owner=ann", headers=AUTH)).json()

        assert late.status_code == 201, late.text
        assert [t["subject"] for t in anns] == ["Call back"]
        assert [t["subject"] for t in everyone] == ["Bob's", "Call back"]
        assert done.json()["done_at"] is not None and after == []
        logged = [e for e in await outbox_events(app) if isinstance(e, ActivityLogged)]
        assert [e.customer_id for e in logged] == [f"account:{account}"] * 3

    async def test_bad_tasks_are_refused(self, client: httpx.AsyncClient) -> None:
        account = await an_account(client)
        due = utcnow().isoformat()
        replies = [
            await client.post("/tasks", json={"subject": "x", "due_at": due}, headers=AUTH),
            await client.post(
                "/tasks", json={"subject": "x", "owner": "a", "due_at": due}, headers=AUTH
            ),
            await client.post(
                "/tasks",
                json={"subject": "x", "owner": "a", "due_at": due, "account_id": "nope"},
                headers=AUTH,
            ),
            await client.post(
                "/tasks",
                json={"subject": "x", "owner": "a", "due_at": "soon", "account_id": account},
                headers=AUTH,
            ),
        ]
        assert [r.status_code for r in replies] == [422, 422, 404, 422]
        assert (await client.get(f"/accounts/{account}/activities", headers=AUTH)).json()[
            "items"
        ] == []


class TestMeetings:
    async def test_a_meeting_links_known_attendees_and_exports_as_icalendar(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = person(email="ada@acme.example")
        await apply(app, ada)
        account = await an_account(client)
        starts = utcnow().replace(microsecond=0) + timedelta(days=1)
        meeting = await client.post(
            "/meetings",
            json={
                "subject": "Demo",
                "account_id": account,
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=1)).isoformat(),
                "location": "Acme HQ, room 2",
                "attendees": ["ADA@acme.example", "cto@acme.example"],
            },
            headers=AUTH,
        )
        ics = await client.get(f"/meetings/{meeting.json()['id']}.ics", headers=AUTH)
        backwards = await client.post(
            "/meetings",
            json={
                "subject": "Oops",
                "account_id": account,
                "starts_at": starts.isoformat(),
                "ends_at": (starts - timedelta(hours=1)).isoformat(),
            },
            headers=AUTH,
        )

        assert meeting.status_code == 201, meeting.text
        assert meeting.json()["customer_ids"] == [ada.customer_id]
        assert ics.headers["content-type"].startswith("text/calendar")
        [event] = Calendar.from_ical(ics.content).walk("VEVENT")
        assert str(event["summary"]) == "Demo" and str(event["location"]) == "Acme HQ, room 2"
        assert event.decoded("dtstart") == starts
        assert sorted(str(a) for a in event["attendee"]) == [
            "mailto:ada@acme.example",
            "mailto:cto@acme.example",
        ]
        assert backwards.status_code == 422
        logged = [e for e in await outbox_events(app) if isinstance(e, ActivityLogged)]
        assert [(e.customer_id, e.kind) for e in logged] == [(ada.customer_id, "meeting")]


class TestEmails:
    async def test_a_raw_email_is_linked_to_contacts_by_address_and_to_the_domain_s_account(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = person(email="ada@acme.example")
        await apply(app, ada)
        account = await an_account(client, domain="acme.example")

        logged = await client.post(
            "/emails", content=RAW, headers={**AUTH, "Content-Type": "message/rfc822"}
        )
        listed = (await client.get(f"/customers/{ada.customer_id}/activities", headers=AUTH)).json()

        assert logged.status_code == 201, logged.text
        body = logged.json()
        assert (body["kind"], body["subject"], body["account_id"]) == (
            "email",
            "Quote for 20 machines",
            account,
        )
        assert body["customer_ids"] == [ada.customer_id]
        assert body["body"].strip() == "Could you send the quote by Friday?"
        assert body["occurred_at"].startswith("2026-12-01T10:00:00")
        assert body["message_id"] == "<q-20@acme.example>"
        assert [a["id"] for a in listed["items"]] == [body["id"]]

    async def test_emails_that_do_not_parse_or_are_too_large_are_refused(
        self, make_app: object
    ) -> None:
        async with make_app(max_email_bytes=2048) as (app, client):  # type: ignore[operator]
            await an_account(client, domain="acme.example")
            raw = {**AUTH, "Content-Type": "message/rfc822"}
            replies = {
                "no From": await client.post(
                    "/emails", content=b"To: a@acme.example\n\nhi\n", headers=raw
                ),
                "no recipient": await client.post(
                    "/emails", content=b"From: a@acme.example\n\nhi\n", headers=raw
                ),
                "not headers": await client.post(
                    "/emails", content=b"just some words\nand more\n", headers=raw
                ),
                "empty": await client.post("/emails", content=b"", headers=raw),
                "too large": await client.post("/emails", content=RAW + b"x" * 4096, headers=raw),
                "not rfc822": await client.post("/emails", json={"raw": "x"}, headers=AUTH),
                "nobody known": await client.post(
                    "/emails",
                    content=b"From: x@nowhere.example\nTo: y@nowhere.example\n\nhi\n",
                    headers=raw,
                ),
            }
            stored = (await client.get("/activities", headers=AUTH)).json()["items"]

        assert {name: r.status_code for name, r in replies.items()} == {
            "no From": 422,
            "no recipient": 422,
            "not headers": 422,
            "empty": 422,
            "too large": 413,
            "not rfc822": 415,
            "nobody known": 422,
        }
        assert stored == []


class TestCallsNotesAndTimeline:
    async def test_the_account_timeline_joins_its_activity_and_its_contacts_timelines(
        self, make_app: object, profile: ProfileStandIn
    ) -> None:
        async with make_app(profile_url=profile.url) as (app, client):  # type: ignore[operator]
            ada = person(email="ada@acme.example")
            await apply(app, ada)
            account = await an_account(client)
            await client.put(f"/accounts/{account}/contacts/{ada.customer_id}", headers=AUTH)
            profile.timelines[ada.customer_id] = [
                {
                    "id": "e-1",
                    "type": "rapport.order.completed.v1",
                    "source": "/services/profile",
                    "occurred_at": "2026-01-02T10:00:00+00:00",
                    "data": {"order_id": "o-1"},
                },
                {
                    "id": "e-2",
                    "type": "rapport.activity.logged.v1",
                    "source": "/services/sales",
                    "occurred_at": "2026-01-03T10:00:00+00:00",
                    "data": {},
                },
            ]
            call = await client.post(
                "/activities",
                json={
                    "kind": "call",
                    "subject": "Intro call",
                    "customer_ids": [ada.customer_id],
                    "occurred_at": "2026-02-01T09:00:00Z",
                },
                headers=AUTH,
            )
            note = await client.post(
                "/activities",
                json={"kind": "note", "subject": "Budget in Q3", "account_id": account},
                headers=AUTH,
            )
            timeline = (await client.get(f"/accounts/{account}/timeline", headers=AUTH)).json()
            profile.timelines.clear()
            partial = (await client.get(f"/accounts/{account}/timeline", headers=AUTH)).json()
            nobody = await client.post(
                "/activities", json={"kind": "call", "subject": "?"}, headers=AUTH
            )

        assert (call.status_code, note.status_code) == (201, 201)
        kinds = [(item["source"], item["type"]) for item in timeline["items"]]
        assert kinds == [
            ("sales", "activity.note"),
            ("sales", "activity.call"),
            ("profile", "rapport.order.completed.v1"),
        ]
        assert timeline["complete"] is True
        assert profile.tokens and all(t == AUTH["Authorization"] for t in profile.tokens)
        assert partial["complete"] is False and len(partial["items"]) == 2
        assert nobody.status_code == 422
