"""Every service's OpenAPI document, fuzzed in process with schemathesis.

Each service runs with its lifespan on a real database (SQLite and PostgreSQL) and
the test broker, on an event loop thread of its own; requests go through httpx's
ASGI transport. Every generated request, valid or not, must get an answer that is
not a 5xx and that matches the documented status, content type and body schema.
About half the requests use ids of records that exist, so the routes behind a 404
are reached too.
"""

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from aiosmtpd.controller import Controller
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from partner_share_testing import ProfileStub, WebhookReceiver, serve
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from rapport_campaign.main import create_app as create_campaign
from rapport_campaign.settings import Settings as CampaignSettings
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port
from rapport_events.testing.stack import DEV_TOKEN
from rapport_partner_share.main import create_app as create_partner_share
from rapport_partner_share.settings import Settings as PartnerShareSettings
from rapport_profile.main import create_app as create_profile
from rapport_profile.settings import Settings as ProfileSettings
from rapport_sales.main import create_app as create_sales
from rapport_sales.settings import Settings as SalesSettings
from rapport_support.main import create_app as create_support
from rapport_support.settings import Settings as SupportSettings

pytestmark = pytest.mark.processes

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
SERVICES = ["profile", "campaign", "support", "partner-share", "sales"]
EXAMPLES_PER_OPERATION = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
TEARDOWN_DRAIN_S = 15.0
# Sales takes a raw e-mail (RFC 5322) as the body of POST /emails: sent as bytes, like a file.
schemathesis.serializer.alias("message/rfc822", "application/octet-stream")
READY_TIMEOUT_S = 30.0


class Sink:
    """An SMTP server's handler that accepts every message and keeps nothing."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 Message accepted for delivery"


@dataclasses.dataclass
class RunningService:
    """A service app with its lifespan on a portal's event loop, and ids of records it holds."""

    name: str
    app: FastAPI
    portal: BlockingPortal
    client: httpx.AsyncClient
    headers: dict[str, str] = dataclasses.field(default_factory=lambda: dict(AUTH))
    known_ids: dict[str, str] = dataclasses.field(default_factory=dict)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.request, method, url, **kwargs))

    def send(self, transport_kwargs: dict[str, Any]) -> httpx.Response:
        """Send what schemathesis built for `requests`, prepared by requests, over httpx."""
        prepared = requests.Request(**transport_kwargs).prepare()
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        return self.request(
            prepared.method or "GET",
            prepared.url or "/",
            headers=dict(prepared.headers),
            content=body,
        )

    def wait_ready(self) -> None:
        """Fuzz a ready service: /readyz is a 503 until the broker is connected."""
        deadline = self.portal.call(_loop_time) + READY_TIMEOUT_S
        while self.request("GET", "/readyz").status_code != 200:
            if self.portal.call(_loop_time) > deadline:
                raise AssertionError(f"{self.name} not ready within {READY_TIMEOUT_S}s")
            self.portal.call(_sleep, 0.1)

    def seed(self, path: str, body: dict[str, Any], id_name: str) -> dict[str, Any]:
        response = self.request("POST", path, json=body, headers=AUTH)
        assert response.status_code in (200, 201), (path, response.text)
        created: dict[str, Any] = response.json()
        self.known_ids[id_name] = created["id"]
        return created

    def drain_outbox(self) -> None:
        """Let the relay publish everything before shutdown, so stopping it never races a send."""
        relay = self.app.state.runtime.relay
        deadline = self.portal.call(_loop_time) + TEARDOWN_DRAIN_S
        while relay is not None and self.portal.call(relay.backlog)[0] > 0:
            if self.portal.call(_loop_time) > deadline:
                raise AssertionError(f"{self.name}: the outbox was not drained")
            self.portal.call(_sleep, 0.05)


async def _loop_time() -> float:
    return asyncio.get_running_loop().time()


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def _settings(name: str, database_url: str, kafka: KafkaSettings, peers: dict[str, str]) -> Any:
    common = {"database_url": database_url, "api_token": DEV_TOKEN, "kafka": kafka}
    if name == "profile":
        return ProfileSettings(
            **common, campaign_url="", support_url="", partner_share_url="", sales_url=""
        )
    if name == "campaign":
        return CampaignSettings(
            **common,
            public_url="http://campaign.test",
            profile_url=peers["profile"],
            profile_token=DEV_TOKEN,
            smtp_host="127.0.0.1",
            smtp_port=int(peers["smtp_port"]),
            sms_webhook_url=peers["webhook"],
            push_webhook_url=peers["webhook"],
            social_webhook_url=peers["webhook"],
            worker_interval_s=0.1,
            segment_refresh_interval_s=3600,
        )
    if name == "support":
        return SupportSettings(**common)
    if name == "sales":
        return SalesSettings(
            **common,
            profile_url=peers["profile"],
            profile_timeout_s=2.0,
            documents_dir=peers["documents_dir"],
        )
    return PartnerShareSettings(
        **common, profile_url=peers["profile"], profile_timeout_s=2.0, webhook_timeout_s=2.0
    )


CREATE_APP: dict[str, Callable[[Any], FastAPI]] = {
    "profile": create_profile,
    "campaign": create_campaign,
    "support": create_support,
    "partner-share": create_partner_share,
    "sales": create_sales,
}


def _seed(service: RunningService) -> None:
    """Create one record of each kind the service's paths name, so fuzzing reaches past 404."""
    if service.name == "profile":
        service.seed(
            "/customers",
            {"email": "fuzz@example.com", "first_name": "F", "last_name": "Z"},
            "customer_id",
        )
    elif service.name == "campaign":
        service.seed(
            "/segments",
            {"name": "buyers", "rule": {"metric": "orders", "op": "gte", "value": 1}},
            "segment_id",
        )
        template = {
            "name": "Spring sale",
            "channel": "email",
            "link": "https://shop.example/spring",
            "variants": [{"name": "A", "subject": "Spring", "body": "Shop: {{ cta_url }}"}],
        }
        service.seed(
            "/campaigns", {**template, "audience": {"customer_ids": ["c-1"]}}, "campaign_id"
        )
        service.seed(
            "/journeys",
            {**template, "trigger": "abandoned_cart", "delay_minutes": 30},
            "journey_id",
        )
        service.known_ids["customer_id"] = "c-1"
    elif service.name == "sales":
        account = service.seed("/accounts", {"name": "Fuzz coffee"}, "account_id")
        service.seed(
            "/opportunities",
            {"account_id": account["id"], "name": "Fuzz: espresso", "amount": "1200.00"},
            "opportunity_id",
        )
        service.seed(
            "/tasks",
            {
                "subject": "Call",
                "account_id": account["id"],
                "owner": "rep:grace",
                "due_at": "2030-01-01T09:00:00Z",
            },
            "task_id",
        )
        service.known_ids["customer_id"] = "c-1"
    elif service.name == "support":
        ticket = service.seed("/tickets", {"customer_id": "c-1", "subject": "Hi"}, "ticket_id")
        service.known_ids["customer_id"] = ticket["customer_id"]
    else:
        partner = service.seed(
            "/partners",
            {
                "name": "Fuzz travel",
                "industry": "travel",
                "slices": ["contact", "demographics"],
                "purposes": ["cross_selling"],
            },
            "partner_id",
        )
        service.headers["X-API-Key"] = partner["api_key"]
        service.known_ids["key_id"] = partner["keys"][0]["id"]
        service.known_ids["customer_id"] = "c-1"


@pytest.fixture(params=SERVICES)
def running_service(
    request: pytest.FixtureRequest,
    database_url: str,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> Iterator[RunningService]:
    """One service on its own event loop thread, with real peers where it calls out."""
    name: str = request.param
    smtp = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    with ExitStack() as stack:
        stack.callback(smtp.stop)
        portal = stack.enter_context(start_blocking_portal())
        profile_url = stack.enter_context(
            portal.wrap_async_context_manager(serve(ProfileStub().app()))
        )
        webhook_url = stack.enter_context(
            portal.wrap_async_context_manager(serve(WebhookReceiver().app()))
        )
        peers = {
            "profile": profile_url,
            "webhook": f"{webhook_url}/hook",
            "smtp_port": smtp.port,
            "documents_dir": str(tmp_path / "documents"),
        }
        app = CREATE_APP[name](_settings(name, database_url, kafka_settings, peers))
        stack.enter_context(portal.wrap_async_context_manager(app.router.lifespan_context(app)))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test"
        )
        stack.callback(portal.call, client.aclose)
        service = RunningService(name, app, portal, client)
        service.wait_ready()
        _seed(service)
        yield service
        service.drain_outbox()


def _fuzz(operation: APIOperation, service: RunningService) -> None:
    """Generate valid and invalid requests for one operation; raise on the first bad answer."""
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=strategy, use_known_ids=st.booleans())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answer_as_documented(case: schemathesis.Case, use_known_ids: bool) -> None:
        if use_known_ids:
            for parameter in case.path_parameters or {}:
                if parameter in service.known_ids:
                    case.path_parameters[parameter] = service.known_ids[parameter]
        transport_kwargs = case.as_transport_kwargs(
            base_url=str(service.client.base_url), headers=service.headers
        )
        # Our credentials even where a negative case dropped or mangled them: a request
        # without them is refused before the route runs, and the route is what is fuzzed.
        transport_kwargs["headers"].update(service.headers)
        response = service.send(transport_kwargs)
        case.validate_response(
            response,
            checks=CHECKS,
            transport_kwargs=transport_kwargs,
        )

    answer_as_documented()


def test_every_operation_answers_as_documented_and_never_with_a_5xx(
    running_service: RunningService,
) -> None:
    schema = schemathesis.openapi.from_dict(running_service.app.openapi())
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the OpenAPI document lists no operations"
    for operation in operations:
        try:
            _fuzz(operation, running_service)
        except (Exception, FailureGroup) as error:
            failures.append(f"{operation.label}:\n{error}")
    assert not failures, f"{len(failures)} of {len(operations)} operations failed:\n\n" + (
        "\n\n".join(failures)
    )
