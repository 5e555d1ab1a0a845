"""The audit log: every privileged action (registering or deleting a partner, creating,
disabling or enabling an operator, creating or launching a campaign, erasing a customer) is
recorded with who, what, on what, when and how it ended, refusals included (of a role, of
a form whose token did not match, of invalid input); admins and privacy officers read it on
/admin/audit, newest first, filtered and a page at a time."""

from typing import Any

import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from rapport_console.audit import access_log
from rapport_console.audit import store as audit_log
from rapport_console.audit.models import DETAIL_LENGTH, Action, AuditEntry, Outcome
from rapport_console.main import CSRF_MISMATCH
from rapport_console.operators.models import Operator
from rapport_console.roles import Role
from rapport_console.testing import CUSTOMER_ID, FakeServices
from rapport_events.db import read_transaction, transaction

from .conftest import Login, anonymous_client, form_token, writes
from .test_console_campaigns import NEW, campaign_form

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration

PAGE = "/admin/audit"
PASSWORD = "a long enough password"


async def entries(console: FastAPI) -> list[tuple[Any, ...]]:
    """(operator, role, action, target, outcome, status) of every entry, oldest first."""
    async with read_transaction(console.state.sessionmaker) as session:
        rows = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
    return [(e.operator, e.role, e.action, e.target, e.outcome, e.status) for e in rows]


async def details(console: FastAPI) -> list[str]:
    async with read_transaction(console.state.sessionmaker) as session:
        rows = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
    return [e.detail for e in rows]


class TestOutcome:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [(200, "done"), (201, "done"), (303, "done"), (400, "refused"), (403, "refused")]
        + [(404, "refused"), (409, "refused"), (500, "failed"), (503, "failed")],
    )
    def test_the_outcome_follows_the_status(self, status: int, outcome: str) -> None:
        assert audit_log.outcome_of(status) == Outcome(outcome)

    def test_an_entry_is_cut_to_its_columns(self) -> None:
        admin = Operator("admin", Role.admin)

        entry = audit_log.entry(admin, Action.partner_register, "n" * 300, 400, "d" * 900)

        assert (len(entry.target), len(entry.detail)) == (200, DETAIL_LENGTH)
        assert (entry.operator, entry.role, entry.outcome) == ("admin", "admin", "refused")


class TestPartners:
    async def test_a_deletion_and_a_registration_are_recorded(
        self, console: FastAPI, login: Login
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get("/partners")).text)
        form = {"csrf_token": token, "industry": "hotels", "purposes": "joint_offers"}

        await admin.post("/partners/p-1/delete", data={"csrf_token": token, "confirm": "nope"})
        await admin.post(
            "/partners/p-1/delete", data={"csrf_token": token, "confirm": "Acme Travel"}
        )
        await admin.post("/partners", data={**form, "name": "Globex", "slices": "contact"})
        await admin.post("/partners", data={**form, "name": "Initech"})  # no slice: refused

        assert await entries(console) == [
            ("admin", "admin", "partner-delete", "p-1", "refused", 400),
            ("admin", "admin", "partner-delete", "p-1", "done", 303),
            ("admin", "admin", "partner-register", "p-2", "done", 201),
            ("admin", "admin", "partner-register", "Initech", "refused", 400),
        ]
        recorded = await details(console)
        assert "type the partner's name" in recorded[0] and recorded[1] == "Acme Travel"
        assert recorded[2] == "Globex" and "at least one" in recorded[3]

    async def test_a_service_that_does_not_answer_is_a_failure(
        self, console: FastAPI, login: Login, fakes: FakeServices
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get("/partners/p-1")).text)

        with fakes.service_down("partner-share"):
            reply = await admin.post(
                "/partners/p-1/delete", data={"csrf_token": token, "confirm": "Acme Travel"}
            )

        assert reply.status_code == 503
        assert await entries(console) == [
            ("admin", "admin", "partner-delete", "p-1", "failed", 503)
        ]

    async def test_a_privacy_officer_refused_a_deletion_is_recorded_and_nothing_changes(
        self, console: FastAPI, login: Login, fakes: FakeServices
    ) -> None:
        officer = await login("privacy")
        token = form_token((await officer.get("/partners/p-1")).text)

        deleted = await officer.post(
            "/partners/p-1/delete", data={"csrf_token": token, "confirm": "Acme Travel"}
        )
        registered = await officer.post(
            "/partners",
            data={"csrf_token": token, "name": "Globex", "industry": "x", "slices": "contact"},
        )

        assert deleted.status_code == 403 and registered.status_code == 403
        assert writes(fakes) == []
        assert await entries(console) == [
            ("privacy", "privacy", "partner-delete", "p-1", "refused", 403),
            ("privacy", "privacy", "partner-register", "Globex", "refused", 403),
        ]
        assert (await details(console))[0] == "may not manage_partners"

    async def test_a_form_whose_token_does_not_match_is_recorded_and_changes_nothing(
        self, console: FastAPI, login: Login, fakes: FakeServices
    ) -> None:
        admin = await login("admin")

        reply = await admin.post(
            "/partners/p-1/delete", data={"csrf_token": "forged", "confirm": "Acme Travel"}
        )

        assert reply.status_code == 403 and writes(fakes) == []
        assert await entries(console) == [
            ("admin", "admin", "partner-delete", "p-1", "refused", 403)
        ]
        assert await details(console) == [CSRF_MISMATCH]

    async def test_invalid_input_is_recorded_and_changes_nothing(
        self, console: FastAPI, login: Login, fakes: FakeServices
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get("/partners")).text)

        reply = await admin.post("/partners", data={"csrf_token": token, "name": "G" * 201})

        assert reply.status_code == 400 and writes(fakes) == []
        assert await entries(console) == [
            ("admin", "admin", "partner-register", "G" * 200, "refused", 400)
        ]
        assert await details(console) == ["invalid input: name"]

    async def test_a_form_without_a_session_is_not_recorded(
        self, console: FastAPI, fakes: FakeServices
    ) -> None:
        async with anonymous_client(console) as stranger:
            reply = await stranger.post(
                "/partners/p-1/delete", data={"csrf_token": "x", "confirm": "Acme Travel"}
            )

        assert reply.status_code == 303  # to the login page: no operator to record
        assert writes(fakes) == [] and await entries(console) == []

    async def test_a_form_that_is_not_audited_records_nothing(
        self, console: FastAPI, login: Login
    ) -> None:
        marketer = await login("marketer")

        reply = await marketer.post("/segments", data={"csrf_token": "forged", "name": "x"})

        assert reply.status_code == 403 and await entries(console) == []


class TestOperators:
    async def test_creating_disabling_and_enabling_are_recorded(
        self, console: FastAPI, login: Login
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get("/admin/operators")).text)
        form = {"csrf_token": token, "username": "alan", "role": "support", "password": PASSWORD}

        await admin.post("/admin/operators", data=form)
        await admin.post("/admin/operators", data=form)  # taken
        await admin.post("/admin/operators/alan/disable", data={"csrf_token": token})
        await admin.post("/admin/operators/alan/enable", data={"csrf_token": token})
        await admin.post("/admin/operators/support/enable", data={"csrf_token": token})

        assert await entries(console) == [
            ("admin", "admin", "operator-create", "alan", "done", 303),
            ("admin", "admin", "operator-create", "alan", "refused", 409),
            ("admin", "admin", "operator-disable", "alan", "done", 303),
            ("admin", "admin", "operator-enable", "alan", "done", 303),
            ("admin", "admin", "operator-enable", "support", "refused", 400),
        ]
        recorded = await details(console)
        assert recorded[0] == "role support" and PASSWORD not in "".join(recorded)
        assert "CONSOLE_OPERATORS" in recorded[4]

    @pytest.mark.parametrize("role", ["marketer", "support", "privacy"])
    async def test_a_role_that_may_not_manage_operators_is_recorded(
        self, console: FastAPI, login: Login, role: str
    ) -> None:
        client = await login(role)
        token = form_token((await client.get("/customers")).text)
        form = {"csrf_token": token, "username": "eve", "role": "admin", "password": PASSWORD}

        created = await client.post("/admin/operators", data=form)
        enabled = await client.post("/admin/operators/eve/enable", data={"csrf_token": token})

        assert created.status_code == 403 and enabled.status_code == 403
        assert await entries(console) == [
            (role, role, "operator-create", "eve", "refused", 403),
            (role, role, "operator-enable", "eve", "refused", 403),
        ]


class TestCampaignsAndErasure:
    async def test_a_creation_a_launch_and_a_refused_one_are_recorded(
        self, console: FastAPI, login: Login
    ) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/campaigns/new")).text)
        await marketer.post("/campaigns", data=campaign_form(token))

        await marketer.post(f"{NEW}/launch", data={"csrf_token": token})
        await marketer.post(f"{NEW}/launch", data={"csrf_token": token})

        assert await entries(console) == [
            ("marketer", "marketer", "campaign-create", "cmp-new", "done", 303),
            ("marketer", "marketer", "campaign-launch", "cmp-new", "done", 303),
            ("marketer", "marketer", "campaign-launch", "cmp-new", "refused", 409),
        ]
        recorded = await details(console)
        assert recorded[0] == "Winter boots" and "only a draft is launched" in recorded[2]

    async def test_a_refused_and_a_failed_creation_are_recorded_by_the_name_typed(
        self, console: FastAPI, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/campaigns/new")).text)

        await marketer.post("/campaigns", data=campaign_form(token, subject=""))
        with fakes.service_down("campaign"):
            failed = await marketer.post("/campaigns", data=campaign_form(token))

        assert failed.status_code == 503
        assert await entries(console) == [
            ("marketer", "marketer", "campaign-create", "Winter boots", "refused", 400),
            ("marketer", "marketer", "campaign-create", "Winter boots", "failed", 503),
        ]
        assert "an e-mail needs a subject" in (await details(console))[0]

    async def test_a_support_agent_refused_a_creation_is_recorded(
        self, console: FastAPI, login: Login, fakes: FakeServices
    ) -> None:
        agent = await login("support")
        token = form_token((await agent.get("/customers")).text)

        reply = await agent.post("/campaigns", data=campaign_form(token))

        assert reply.status_code == 403 and writes(fakes) == []
        assert await entries(console) == [
            ("support", "support", "campaign-create", "Winter boots", "refused", 403)
        ]

    async def test_a_support_agent_refused_a_launch_is_recorded(
        self, console: FastAPI, login: Login, fakes: FakeServices
    ) -> None:
        agent = await login("support")
        token = form_token((await agent.get("/customers")).text)

        reply = await agent.post("/campaigns/cmp-1/launch", data={"csrf_token": token})

        assert reply.status_code == 403 and writes(fakes) == []
        assert await entries(console) == [
            ("support", "support", "campaign-launch", "cmp-1", "refused", 403)
        ]

    async def test_an_erasure_is_an_action_and_still_a_view(
        self, console: FastAPI, login: Login
    ) -> None:
        officer = await login("privacy")
        token = form_token((await officer.get(f"/customers/{CUSTOMER_ID}")).text)
        erase = f"/customers/{CUSTOMER_ID}/erase"

        await officer.post(erase, data={"csrf_token": token, "confirm": "yes"})
        await officer.post(erase, data={"csrf_token": token, "confirm": CUSTOMER_ID})

        assert await entries(console) == [
            ("privacy", "privacy", "customer-erase", CUSTOMER_ID, "refused", 400),
            ("privacy", "privacy", "customer-erase", CUSTOMER_ID, "done", 200),
        ]
        async with read_transaction(console.state.sessionmaker) as session:
            views = await access_log.of_customer(session, CUSTOMER_ID)
        assert "erase" in [v.page for v in views]

    async def test_a_support_agent_refused_an_erasure_is_recorded(
        self, console: FastAPI, login: Login, fakes: FakeServices
    ) -> None:
        agent = await login("support")
        token = form_token((await agent.get("/customers")).text)

        reply = await agent.post(
            f"/customers/{CUSTOMER_ID}/erase", data={"csrf_token": token, "confirm": CUSTOMER_ID}
        )

        assert reply.status_code == 403 and writes(fakes) == []
        assert await entries(console) == [
            ("support", "support", "customer-erase", CUSTOMER_ID, "refused", 403)
        ]


async def seed(console: FastAPI, count: int, username: str = "admin") -> None:
    """`count` launches of campaigns c-0, c-1, ... by `username`, in that order."""
    operator = Operator(username, Role.admin if username == "admin" else Role.marketer)
    async with transaction(console.state.sessionmaker) as session:
        for n in range(count):
            audit_log.record(session, operator, Action.campaign_launch, f"c-{n}", 303)


def targets(html: str) -> list[str]:
    """The targets of the audit page's rows, top to bottom."""
    rows = html.split('data-testid="audit-entry"')[1:]
    return [row.split("<td>")[5].split("</td>")[0] for row in rows]


class TestPage:
    async def test_the_newest_come_first_and_filters_narrow_them(
        self, console: FastAPI, login: Login
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get("/partners/p-1")).text)
        await seed(console, 2, "marketer")
        await admin.post(
            "/partners/p-1/delete", data={"csrf_token": token, "confirm": "Acme Travel"}
        )

        everything = await admin.get(PAGE)
        by_marketer = await admin.get(PAGE, params={"operator": "marketer"})
        deletions = await admin.get(PAGE, params={"action": "partner-delete"})
        none = await admin.get(PAGE, params={"operator": "admin", "action": "campaign-launch"})

        assert everything.status_code == 200
        assert targets(everything.text) == ["p-1", "c-1", "c-0"]
        assert targets(by_marketer.text) == ["c-1", "c-0"]
        assert targets(deletions.text) == ["p-1"] and "<td>Acme Travel</td>" in deletions.text
        assert targets(none.text) == [] and "Nothing recorded." in none.text
        assert '<option value="partner-delete" selected>' in deletions.text

    async def test_a_page_at_a_time_with_a_link_to_older_entries(
        self, console: FastAPI, login: Login
    ) -> None:
        officer = await login("privacy")  # privacy officers read it too
        await seed(console, audit_log.PAGE + 3)

        first = await officer.get(PAGE, params={"action": "campaign-launch"})
        older = first.text.split('href="')[-1].split('" data-testid="audit-older"')[0]
        second = await officer.get(older.replace("&amp;", "&"))

        newest = audit_log.PAGE + 2
        assert targets(first.text) == [f"c-{n}" for n in range(newest, 2, -1)]
        assert "action=campaign-launch" in older and "before=" in older
        assert targets(second.text) == ["c-2", "c-1", "c-0"]
        assert 'data-testid="audit-older"' not in second.text

    async def test_an_unknown_action_is_refused(self, login: Login) -> None:
        admin = await login("admin")

        assert (await admin.get(PAGE, params={"action": "drop-tables"})).status_code == 400

    @pytest.mark.parametrize("role", ["marketer", "support"])
    async def test_other_roles_get_403_and_no_link(self, login: Login, role: str) -> None:
        client = await login(role)

        assert (await client.get(PAGE)).status_code == 403
        assert f'href="{PAGE}"' not in (await client.get("/customers")).text

    async def test_admins_and_privacy_officers_have_the_link(self, login: Login) -> None:
        for role in ("admin", "privacy"):
            client = await login(role)
            assert f'<a href="{PAGE}">Audit log</a>' in (await client.get("/customers")).text
