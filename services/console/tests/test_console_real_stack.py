"""The console over the four real services (processes on this run's broker, SQLite): a
customer created on profile, with an order, reads whole on the 360, found by e-mail and
phone. The fakes of the fast tests stand in for exactly these answers."""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from rapport_console.main import create_app
from rapport_console.settings import DEVELOPMENT_PASSWORD, Settings
from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.harness import until_value
from rapport_events.testing.stack import DEV_TOKEN, SERVICES, Stack, kafka_env
from rapport_profile.settings import DEVELOPMENT_WRITE_KEY

from .conftest import log_in

pytestmark = [pytest.mark.processes, pytest.mark.e2e]

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    broker = TansuBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def stack(broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    databases = {name: f"sqlite:///{workdir}/{name}.db" for name in SERVICES}
    env = kafka_env(broker.bootstrap_servers, "console-e2e")
    running = Stack(workdir=workdir, env=env, databases=databases).start()
    try:
        # Four processes migrating and joining their groups: slow on a loaded machine.
        running.wait_ready(timeout=180)
        yield running
    finally:
        running.stop()


@pytest.fixture
async def console(stack: Stack, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        environment="development",
        database_url=f"sqlite:///{tmp_path}/console.db",
        service_timeout_s=10.0,
        **{f"{name.replace('-', '_')}_url": stack.url(name) for name in SERVICES},
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://console.test") as client,
    ):
        assert (await log_in(client, "privacy", DEVELOPMENT_PASSWORD)).status_code == 303
        yield client


async def _customer_with_an_order(stack: Stack) -> str:
    profile = stack.url("profile")
    async with httpx.AsyncClient(timeout=10.0, headers=AUTH) as http:
        created = await http.post(
            f"{profile}/customers",
            json={
                "email": "grace@example.com",
                "phone": "+14155550123",
                "first_name": "Grace",
                "last_name": "Hopper",
                "country": "US",
            },
        )
        assert created.status_code == 201, created.text
        customer = created.json()["id"]
        order = {
            "type": "track",
            "userId": customer,
            "event": "Order Completed",
            "messageId": f"console-e2e-{customer}",
            "timestamp": datetime.now(UTC).isoformat(),
            "properties": {"order_id": f"o-{customer}", "revenue": 125},
        }
        reply = await http.post(
            f"{profile}/v1/batch", json={"batch": [order]}, auth=(DEVELOPMENT_WRITE_KEY, "")
        )
        assert reply.status_code == 200, reply.text

        async def everywhere() -> bool:
            metrics = await http.get(f"{profile}/customers/{customer}/metrics")
            context = await http.get(f"{stack.url('support')}/customers/{customer}/support-context")
            audience = await http.get(f"{stack.url('campaign')}/audience/{customer}")
            return (
                metrics.status_code == 200
                and metrics.json()["orders"] == 1
                and context.status_code == 200
                and audience.status_code == 200
            )

        await until_value(everywhere, timeout=60, what="the customer in every service")
    return str(customer)


async def test_the_360_of_a_real_customer_is_whole(
    stack: Stack, console: httpx.AsyncClient
) -> None:
    customer = await _customer_with_an_order(stack)

    page = await console.get(f"/customers/{customer}")
    by_email = await console.get("/customers", params={"q": "grace@example.com"})
    by_phone = await console.get("/customers", params={"q": "+1 415 555 0123"})

    assert page.status_code == 200
    html = page.text
    assert 'data-testid="partial"' not in html, html[html.find("partial") :][:300]
    assert 'data-testid="customer-name">Grace Hopper<' in html
    month = datetime.now(UTC).strftime("%Y-%m")
    assert f"<th>{month}</th><td>125.0</td><td>1</td>" in html  # the spend chart's table
    assert "marketing" not in html or 'data-testid="consents"' in html
    assert "No partner has seen this customer." in html
    assert "<td>privacy</td><td>privacy</td><td>customer-360</td>" in html
    for found in (by_email, by_phone):
        assert f'href="/customers/{customer}"' in found.text
