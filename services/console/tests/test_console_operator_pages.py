"""Operators page: an admin lists every account, creates one (its password kept only as an
argon2id hash) that can then log in, disables it, which logs it out at once, and enables it
again, with its role; bad input is a form error, and no other role, nor a forged form,
changes anything."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from rapport_console.operators.models import OperatorRecord
from rapport_events.db import read_transaction

from .conftest import Login, anonymous_client, form_token, log_in

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration

PAGE = "/admin/operators"
PASSWORD = "a long enough password"


async def stored(console: FastAPI) -> list[OperatorRecord]:
    async with read_transaction(console.state.sessionmaker) as session:
        return list((await session.exec(select(OperatorRecord))).all())


async def test_an_admin_creates_an_operator_who_then_logs_in(
    console: FastAPI, login: Login
) -> None:
    admin = await login("admin")
    page = await admin.get(PAGE)

    reply = await admin.post(
        PAGE,
        data={
            "csrf_token": form_token(page.text),
            "username": "grace",
            "role": "marketer",
            "password": PASSWORD,
        },
    )

    assert page.status_code == 200 and "<td>support</td><td>Support agent</td>" in page.text
    assert reply.status_code == 303 and reply.headers["location"] == PAGE
    (record,) = await stored(console)
    assert (record.username, record.role, record.created_by) == ("grace", "marketer", "admin")
    assert record.password_hash.startswith("$argon2id$") and PASSWORD not in record.password_hash
    assert "created here by admin" in (await admin.get(PAGE)).text
    async with anonymous_client(console) as grace:
        assert (await log_in(grace, "grace", PASSWORD)).status_code == 303
        assert (await grace.get("/segments")).status_code == 200
        assert (await grace.get(PAGE)).status_code == 403


async def test_disabling_logs_the_operator_out_at_once(console: FastAPI, login: Login) -> None:
    admin = await login("admin")
    token = form_token((await admin.get(PAGE)).text)
    form = {"csrf_token": token, "username": "alan", "role": "support", "password": PASSWORD}
    await admin.post(PAGE, data=form)
    async with anonymous_client(console) as alan:
        await log_in(alan, "alan", PASSWORD)
        assert (await alan.get("/tickets")).status_code == 200

        reply = await admin.post(f"{PAGE}/alan/disable", data={"csrf_token": token})

        assert reply.status_code == 303
        assert (await alan.get("/tickets")).status_code == 303  # to the login page
        assert (await log_in(alan, "alan", PASSWORD)).status_code == 401
    (record,) = await stored(console)
    assert record.disabled_at is not None and record.disabled_by == "admin"
    again = await admin.post(PAGE, data=form)
    assert again.status_code == 409 and "already an operator alan" in again.text


class TestEnable:
    async def test_an_enabled_operator_logs_in_again_with_their_role(
        self, console: FastAPI, login: Login
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get(PAGE)).text)
        form = {"csrf_token": token, "username": "alan", "role": "support", "password": PASSWORD}
        await admin.post(PAGE, data=form)
        await admin.post(f"{PAGE}/alan/disable", data={"csrf_token": token})
        disabled = await admin.get(PAGE)

        reply = await admin.post(f"{PAGE}/alan/enable", data={"csrf_token": token})

        assert 'data-testid="enable-alan"' in disabled.text
        assert 'data-testid="disable-alan"' not in disabled.text
        assert reply.status_code == 303 and reply.headers["location"] == PAGE
        (record,) = await stored(console)
        assert (record.role, record.disabled_at, record.disabled_by) == ("support", None, None)
        assert 'data-testid="disable-alan"' in (await admin.get(PAGE)).text
        async with anonymous_client(console) as alan:
            assert (await log_in(alan, "alan", PASSWORD)).status_code == 303
            assert (await alan.get("/tickets")).status_code == 200
            assert (await alan.get(PAGE)).status_code == 403  # still a support agent

    async def test_the_change_is_committed_before_the_reply_starts(
        self, console: FastAPI, login: Login
    ) -> None:
        """A browser follows the redirect at once: the page it loads must see the change."""
        admin = await login("admin")
        token = form_token((await admin.get(PAGE)).text)
        form = {"csrf_token": token, "username": "alan", "role": "support", "password": PASSWORD}
        await admin.post(PAGE, data=form)
        await admin.post(f"{PAGE}/alan/disable", data={"csrf_token": token})
        seen_when_replying: list[Any] = []

        async def looking_as_it_replies(scope: Any, receive: Any, send: Any) -> None:
            async def send_after_looking(message: Any) -> None:
                if message["type"] == "http.response.start":
                    (record,) = await stored(console)
                    seen_when_replying.append(record.disabled_at)
                await send(message)

            await console(scope, receive, send_after_looking)

        transport = httpx.ASGITransport(app=looking_as_it_replies)
        async with httpx.AsyncClient(
            transport=transport, base_url=str(admin.base_url), cookies=admin.cookies
        ) as browser:
            reply = await browser.post(f"{PAGE}/alan/enable", data={"csrf_token": token})

        assert reply.status_code == 303
        assert seen_when_replying == [None]

    async def test_configured_and_unknown_accounts_are_not_enabled(
        self, console: FastAPI, login: Login
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get(PAGE)).text)

        configured = await admin.post(f"{PAGE}/support/enable", data={"csrf_token": token})
        unknown = await admin.post(f"{PAGE}/nobody/enable", data={"csrf_token": token})

        assert configured.status_code == 400 and "CONSOLE_OPERATORS" in configured.text
        assert unknown.status_code == 404 and "no operator nobody" in unknown.text
        assert await stored(console) == []

    async def test_other_roles_and_forged_forms_enable_nothing(
        self, console: FastAPI, login: Login
    ) -> None:
        admin, agent = await login("admin"), await login("support")
        token = form_token((await admin.get(PAGE)).text)
        form = {"csrf_token": token, "username": "alan", "role": "support", "password": PASSWORD}
        await admin.post(PAGE, data=form)
        await admin.post(f"{PAGE}/alan/disable", data={"csrf_token": token})
        agent_token = form_token((await agent.get("/customers")).text)

        refused = await agent.post(f"{PAGE}/alan/enable", data={"csrf_token": agent_token})
        forged = await admin.post(f"{PAGE}/alan/enable", data={"csrf_token": "forged"})

        assert refused.status_code == 403 and forged.status_code == 403
        (record,) = await stored(console)
        assert record.disabled_at is not None
        async with anonymous_client(console) as alan:
            assert (await log_in(alan, "alan", PASSWORD)).status_code == 401


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"username": "grace", "role": "marketer", "password": "short"}, 400, "at least 12"),
        ({"username": "gr ace", "role": "marketer", "password": PASSWORD}, 400, "letters, digits"),
        ({"username": "grace", "role": "owner", "password": PASSWORD}, 400, "the role is one of"),
        ({"username": "support", "role": "admin", "password": PASSWORD}, 409, "already"),
        ({"username": "g" * 65, "role": "admin", "password": PASSWORD}, 400, "Invalid input"),
    ],
)
async def test_bad_input_is_a_form_error_and_stores_nothing(
    console: FastAPI, login: Login, fields: dict[str, str], status: int, message: str
) -> None:
    admin = await login("admin")
    token = form_token((await admin.get(PAGE)).text)

    reply = await admin.post(PAGE, data={"csrf_token": token, **fields})

    assert reply.status_code == status and message in reply.text
    assert await stored(console) == []


async def test_configured_accounts_and_ones_own_are_not_disabled_here(
    console: FastAPI, login: Login
) -> None:
    admin = await login("admin")
    token = form_token((await admin.get(PAGE)).text)
    form = {"csrf_token": token, "username": "root", "role": "admin", "password": PASSWORD}
    await admin.post(PAGE, data=form)

    configured = await admin.post(f"{PAGE}/support/disable", data={"csrf_token": token})
    unknown = await admin.post(f"{PAGE}/nobody/disable", data={"csrf_token": token})
    async with anonymous_client(console) as root:
        await log_in(root, "root", PASSWORD)
        own_token = form_token((await root.get(PAGE)).text)
        own = await root.post(f"{PAGE}/root/disable", data={"csrf_token": own_token})

    assert configured.status_code == 400 and "CONSOLE_OPERATORS" in configured.text
    assert unknown.status_code == 404
    assert own.status_code == 400 and "your own account" in own.text


@pytest.mark.parametrize("role", ["marketer", "support", "privacy"])
async def test_other_roles_get_403_and_change_nothing(
    console: FastAPI, login: Login, role: str
) -> None:
    client = await login(role)
    token = form_token((await client.get("/customers")).text)
    form = {"csrf_token": token, "username": "eve", "role": "admin", "password": PASSWORD}

    assert (await client.get(PAGE)).status_code == 403
    assert (await client.post(PAGE, data=form)).status_code == 403
    assert (await client.post(f"{PAGE}/support/disable", data=form)).status_code == 403
    assert f'<a href="{PAGE}">' not in (await client.get("/customers")).text
    assert await stored(console) == []


async def test_a_form_without_its_token_creates_nothing(console: FastAPI, login: Login) -> None:
    admin = await login("admin")

    reply = await admin.post(PAGE, data={"username": "eve", "role": "admin", "password": PASSWORD})

    assert reply.status_code == 403
    assert await stored(console) == []
