"""Operators: login with argon2 hashes and a rate limit, CSRF on every form, roles that
decide pages and parts, and the access log every view of a customer lands in."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from rapport_console.customers.pages import ACCESS_ON_PAGE
from rapport_console.main import create_app
from rapport_console.operators.service import Directory, LoginLimiter, hash_password
from rapport_console.operators.sessions import SESSION_COOKIE
from rapport_console.roles import Role
from rapport_console.settings import DEVELOPMENT_PASSWORD, OperatorAccount, Settings
from rapport_console.testing import CUSTOMER_ID, FakeServices, fake_settings

from .conftest import Login, anonymous_client, form_token, log_in

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration

PAGE = f"/customers/{CUSTOMER_ID}"
TICKET_TEXT = "Kettle leaks"


class TestLogin:
    async def test_a_page_sends_an_anonymous_visitor_to_login_and_back(
        self, console: FastAPI
    ) -> None:
        async with anonymous_client(console) as client:
            reply = await client.get(PAGE)
            assert reply.status_code == 303
            assert reply.headers["location"] == f"/login?next=%2Fcustomers%2F{CUSTOMER_ID}"

            page = await client.get("/login", params={"next": PAGE})
            reply = await client.post(
                "/login",
                data={
                    "username": "support",
                    "password": DEVELOPMENT_PASSWORD,
                    "csrf_token": form_token(page.text),
                    "next": PAGE,
                },
            )

            assert reply.status_code == 303 and reply.headers["location"] == PAGE
            cookie = reply.headers["set-cookie"]
            assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
            assert (await client.get(PAGE)).status_code == 200

    async def test_never_redirects_to_another_site(self, console: FastAPI) -> None:
        async with anonymous_client(console) as client:
            page = await client.get("/login")
            reply = await client.post(
                "/login",
                data={
                    "username": "support",
                    "password": DEVELOPMENT_PASSWORD,
                    "csrf_token": form_token(page.text),
                    "next": "//evil.example/",
                },
            )
            assert reply.headers["location"] == "/customers"

    async def test_a_wrong_password_is_refused(self, console: FastAPI) -> None:
        async with anonymous_client(console) as client:
            reply = await log_in(client, "support", "not the password")

            assert reply.status_code == 401
            assert SESSION_COOKIE not in reply.headers.get("set-cookie", "")
            assert (await client.get(PAGE)).status_code == 303

    async def test_a_login_without_the_form_token_is_refused(self, console: FastAPI) -> None:
        async with anonymous_client(console) as client:
            await client.get("/login")
            reply = await client.post(
                "/login",
                data={"username": "support", "password": DEVELOPMENT_PASSWORD, "csrf_token": "x"},
            )
            assert reply.status_code == 400

    async def test_too_many_failures_block_even_the_right_password(self, console: FastAPI) -> None:
        async with anonymous_client(console) as client:
            for _ in range(console.state.settings.login_attempts):
                assert (await log_in(client, "privacy", "guess")).status_code == 401

            reply = await log_in(client, "privacy", DEVELOPMENT_PASSWORD)

            assert reply.status_code == 429

    async def test_a_forged_session_cookie_is_ignored(self, console: FastAPI) -> None:
        async with anonymous_client(console) as client:
            client.cookies.set(SESSION_COOKIE, '{"u": "admin", "c": "x"}')
            assert (await client.get(PAGE)).status_code == 303

    async def test_logout_needs_the_session_token(self, login: Login) -> None:
        client = await login("marketer")

        refused = await client.post("/logout", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        assert (await client.get("/customers")).status_code == 200

        page = await client.get("/customers")
        done = await client.post("/logout", data={"csrf_token": form_token(page.text)})
        assert done.status_code == 303
        assert (await client.get("/customers")).status_code == 303


class TestLoginLimiter:
    def test_failures_expire_after_the_window(self) -> None:
        limiter = LoginLimiter(attempts=2, window_s=0.0001)
        limiter.failed("user:a")
        limiter.failed("user:a")

        time.sleep(0.001)
        assert not limiter.blocked("user:a")

    def test_a_success_clears_the_count(self) -> None:
        limiter = LoginLimiter(attempts=2, window_s=60)
        limiter.failed("user:a")
        limiter.succeeded("user:a")
        limiter.failed("user:a")
        assert not limiter.blocked("user:a")


class TestOperatorAccounts:
    def test_passwords_are_stored_as_argon2_hashes(self) -> None:
        account = OperatorAccount(
            username="ada", role=Role.privacy, password_hash=hash_password("long enough password")
        )
        directory = Directory([account])

        assert account.password_hash.startswith("$argon2id$")
        assert directory.authenticate("ada", "long enough password") is not None
        assert directory.authenticate("ada", "wrong") is None
        assert directory.authenticate("nobody", "long enough password") is None

    def test_the_cli_prints_an_entry_for_the_settings(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "rapport_console.operators", "grace", "marketer"],
            input="a password of some length\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        entry = OperatorAccount.model_validate(json.loads(result.stdout))

        assert entry.role is Role.marketer
        assert Directory([entry]).authenticate("grace", "a password of some length")

    def test_production_has_no_development_operators(self) -> None:
        settings = Settings(
            environment="production",
            api_token="a-very-long-random-token-0123456789abcdef",
            session_secret="another-long-random-secret-0123456789abcdef",
        )
        assert Directory.from_settings(settings).usernames() == []

    def test_production_refuses_the_published_session_secret(self) -> None:
        with pytest.raises(ValueError, match="CONSOLE_SESSION_SECRET"):
            Settings(
                environment="production", api_token="a-very-long-random-token-0123456789abcdef"
            )


class TestRoles:
    @pytest.mark.parametrize(
        ("role", "path", "allowed"),
        [
            ("marketer", "/analytics", True),
            ("marketer", "/segments", True),
            ("marketer", "/campaigns", True),
            ("marketer", "/access-log", False),
            ("support", "/analytics", False),
            ("support", "/segments", False),
            ("support", "/access-log", False),
            ("privacy", "/access-log", True),
            ("privacy", "/analytics", False),
            ("admin", "/access-log", True),
            ("admin", "/analytics", True),
        ],
    )
    async def test_each_role_sees_only_its_pages(
        self, login: Login, role: str, path: str, allowed: bool
    ) -> None:
        client = await login(role)

        page = await client.get(path)

        assert page.status_code == (200 if allowed else 403), page.text[:300]
        nav_link = f'<a href="{path}">'
        assert (nav_link in page.text) is allowed

    async def test_a_marketer_sees_no_ticket_text(self, login: Login) -> None:
        marketer, agent = await login("marketer"), await login("support")

        as_marketer = (await marketer.get(PAGE)).text
        as_agent = (await agent.get(PAGE)).text
        timeline = (await marketer.get(f"{PAGE}/timeline", params={"kind": "support"})).text

        assert TICKET_TEXT not in as_marketer and TICKET_TEXT not in timeline
        assert "ticket details hidden for your role" in timeline
        assert TICKET_TEXT in as_agent
        assert "KT-200" in as_marketer  # the product model is not personal text


class TestAccessLog:
    async def test_every_view_is_recorded_and_shown_to_the_privacy_officer(
        self, login: Login
    ) -> None:
        agent = await login("support")
        await agent.get(PAGE)
        await agent.get(f"{PAGE}/timeline", params={"kind": "orders"})
        await agent.get("/customers", params={"q": "ada@example.com"})
        officer = await login("privacy")

        on_the_360 = (await officer.get(PAGE)).text
        log = (await officer.get("/access-log", params={"customer": CUSTOMER_ID})).text

        for page in ("customer-360", "timeline", "search"):
            assert f"<td>support</td><td>support</td><td>{page}</td>" in on_the_360
        assert on_the_360.count("<td>support</td><td>support</td>") == 3
        assert "<td>privacy</td><td>privacy</td><td>customer-360</td>" in on_the_360
        assert log.count(f">{CUSTOMER_ID}</a>") == 4

    async def test_the_360_shows_the_newest_views_and_links_to_every_view(
        self, login: Login
    ) -> None:
        agent = await login("support")
        for _ in range(ACCESS_ON_PAGE + 5):
            await agent.get(PAGE)
        officer = await login("privacy")

        on_the_360 = (await officer.get(PAGE)).text
        log = (await officer.get("/access-log", params={"customer": CUSTOMER_ID})).text

        assert on_the_360.count("<td>customer-360</td>") == ACCESS_ON_PAGE
        # The officer's own view is the newest; the oldest agent views fall off the page.
        assert on_the_360.count("<td>support</td><td>support</td>") == ACCESS_ON_PAGE - 1
        assert f'href="/access-log?customer={CUSTOMER_ID}"' in on_the_360
        assert log.count(f">{CUSTOMER_ID}</a>") == ACCESS_ON_PAGE + 6

    async def test_other_roles_do_not_see_who_viewed(self, login: Login) -> None:
        agent = await login("support")

        page = (await agent.get(PAGE)).text

        assert 'data-testid="access-log"' not in page

    async def test_filtered_by_operator(self, login: Login) -> None:
        await (await login("marketer")).get(PAGE)
        await (await login("support")).get(PAGE)
        admin = await login("admin")

        log = (await admin.get("/access-log", params={"operator": "marketer"})).text

        assert "<td>marketer</td>" in log and "<td>support</td>" not in log


class TestPagesAreSafe:
    async def test_scripts_come_only_from_the_console(self, login: Login) -> None:
        client = await login("marketer")

        page = await client.get("/analytics")

        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'self'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert "http://" not in page.text.replace("http://console.test", "")
        assert "https://" not in page.text

    async def test_the_libraries_are_served_from_npm_packages(self, console: FastAPI) -> None:
        async with anonymous_client(console) as client:
            chart = await client.get("/assets/chart.umd.min.js")
            htmx = await client.get("/assets/htmx.min.js")
            missing = await client.get("/assets/../package.json")
            unknown = await client.get("/assets/lodash.js")

        assert chart.status_code == 200 and "Chart" in chart.text[:2000]
        assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]
        assert missing.status_code == 404 and unknown.status_code == 404

    async def test_ready_when_the_database_and_the_libraries_are(self, console: FastAPI) -> None:
        async with anonymous_client(console) as client:
            reply = await client.get("/readyz")
        assert reply.status_code == 200, reply.text
        assert reply.json()["checks"] == {
            "database": "ok",
            "assets": "ok",
            "console-log-retention": "ok",
        }


async def test_analytics_draws_each_chart_with_its_numbers(login: Login) -> None:
    client = await login("marketer")

    page = await client.get("/analytics", params={"by": "gender", "metric": "orders"})

    html = page.text
    for chart in ("trends", "forecast", "tiers", "channels"):
        assert f'data-testid="chart-{chart}"' in html and f'data-testid="table-{chart}"' in html
    assert "<th>female</th><th>male</th>" in html
    assert "<th>2026-12-01</th><td></td><td>1100.0</td><td>1050.0</td><td>1150.0</td>" in html
    assert "Winter sale" in html


async def test_analytics_refuses_an_unknown_dimension(login: Login) -> None:
    client = await login("marketer")

    page = await client.get("/analytics", params={"by": "star_sign"})

    assert page.status_code == 400


async def test_marketing_pages_render_partial_when_campaign_is_down(
    login: Login, fakes: FakeServices
) -> None:
    client = await login("marketer")
    fakes.down.add("campaign")

    page = await client.get("/segments")

    assert page.status_code == 200 and "<strong>campaign</strong>" in page.text


async def test_outside_development_the_session_cookie_is_secure(tmp_path: Path) -> None:
    password = "a long production password"
    settings = fake_settings(
        environment="production",
        database_url=f"sqlite:///{tmp_path}/console.db",
        session_secret="a-production-session-secret-0123456789abcdef",
        operators=[
            OperatorAccount(
                username="ada", role=Role.privacy, password_hash=hash_password(password)
            )
        ],
    )
    app = create_app(settings, transport=FakeServices().transport())
    # Secure cookies go back over HTTPS only, as behind the deployment's TLS.
    https = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://console.test"
    )
    async with app.router.lifespan_context(app), https as client:
        reply = await log_in(client, "ada", password)
        refused = await log_in(client, "privacy", DEVELOPMENT_PASSWORD)

    assert reply.status_code == 303
    cookie = reply.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert refused.status_code == 401  # no development operators in production
