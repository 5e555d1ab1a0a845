"""Profile's public API against a model, with restarts and crashes in between.

A hypothesis state machine creates customers, changes them, sets consents and
tracks orders through /v1/batch (some replayed with the same messageId), and
checks every reply against a plain in-memory model. Profile runs as a real
process on a real database and broker; some steps stop it gracefully or kill it
with SIGKILL and start it again on the same database. Nothing acknowledged may
be lost, and nothing may count twice.
"""

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.testing.stack import DEV_TOKEN, Stack, kafka_env

pytestmark = pytest.mark.processes

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
WRITE_KEY = "rapport-dev-write-key"
TRACKING = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
NAMES = ["ann", "bob", "cid", "dee"]
CHANNELS = ["email", "sms", "push"]
# Orders reach metrics through the log (outbox, relay, broker, consumer): an eventual read.
CONVERGE_S = 30.0
RESTARTS_PER_RUN = 2


@dataclass
class Model:
    """What profile must show, kept by the test."""

    emails: dict[str, str] = field(default_factory=dict)  # customer id -> e-mail
    first_names: dict[str, str] = field(default_factory=dict)
    consents: dict[tuple[str, str], bool] = field(default_factory=dict)  # (id, channel)
    orders: dict[str, list[Decimal]] = field(default_factory=dict)


@pytest.fixture
async def profile_stack(
    kafka_broker: TansuBroker, database_factory: DatabaseFactory, tmp_path: Path
) -> Iterator[Stack]:
    env = {
        **kafka_env(kafka_broker.bootstrap_servers, "model"),
        "PROFILE_CAMPAIGN_URL": "",
        "PROFILE_SUPPORT_URL": "",
        "PROFILE_PARTNER_SHARE_URL": "",
        "PROFILE_SALES_URL": "",
    }
    stack = Stack(workdir=tmp_path, env=env, databases={"profile": await database_factory("p")})
    stack.start(["profile"])
    try:
        stack.wait_ready(timeout=60)
        yield stack
    finally:
        stack.stop()


def machine_for(stack: Stack) -> type[RuleBasedStateMachine]:
    """A state machine class bound to one running profile."""

    class ProfileModel(RuleBasedStateMachine):
        customers = Bundle("customers")
        sent_batches = Bundle("sent_batches")

        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            self.run = uuid.uuid4().hex[:8]  # the database outlives one run: unique e-mails
            self.restarts = 0
            self.http = httpx.Client(timeout=10.0)

        def teardown(self) -> None:
            """Whatever was acknowledged shows in the end, exactly once."""
            try:
                for customer in self.model.emails:
                    self.metrics_match(customer)
            finally:
                self.http.close()

        # --- talking to profile

        def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
            headers = kwargs.pop("headers", AUTH)
            return self.http.request(
                method, f"{stack.url('profile')}{path}", headers=headers, **kwargs
            )

        def post_batch(self, batch: dict[str, Any]) -> None:
            response = self.call("POST", "/v1/batch", json=batch, headers=TRACKING)
            assert response.status_code == 200, response.text

        def until_equal(self, read: Any, expected: Any, what: str) -> None:
            deadline = time.monotonic() + CONVERGE_S
            seen = read()
            while seen != expected:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what}: {seen!r} never became {expected!r}")
                time.sleep(0.1)
                seen = read()

        # --- customers

        @initialize(target=customers, name=st.sampled_from(NAMES))
        def first_customer(self, name: str) -> str:
            return self.create(name)

        @rule(target=customers, name=st.sampled_from(NAMES))
        def create_customer(self, name: str) -> str:
            email = self.email(name)
            if email in self.model.emails.values():
                response = self.call("POST", "/customers", json=self.body(name))
                assert response.status_code == 409, response.text
                owner = next(cid for cid, known in self.model.emails.items() if known == email)
                assert response.json()["existing_id"] == owner
                return owner
            return self.create(name)

        def email(self, name: str) -> str:
            return f"{name}-{self.run}@example.com"

        def body(self, name: str) -> dict[str, str]:
            return {"email": self.email(name), "first_name": name.title(), "last_name": "Model"}

        def create(self, name: str) -> str:
            response = self.call("POST", "/customers", json=self.body(name))
            assert response.status_code == 201, response.text
            customer_id: str = response.json()["id"]
            self.model.emails[customer_id] = self.email(name)
            self.model.first_names[customer_id] = name.title()
            self.model.orders[customer_id] = []
            return customer_id

        @rule(customer=customers, first_name=st.sampled_from(["Ada", "Grace", "Edsger"]))
        def rename(self, customer: str, first_name: str) -> None:
            response = self.call("PATCH", f"/customers/{customer}", json={"first_name": first_name})
            assert response.status_code == 200, response.text
            self.model.first_names[customer] = first_name
            assert response.json()["first_name"] == first_name

        @rule(customer=customers, other=customers)
        def take_anothers_email(self, customer: str, other: str) -> None:
            wanted = self.model.emails[other]
            response = self.call("PATCH", f"/customers/{customer}", json={"email": wanted})
            if customer == other:
                assert response.status_code == 200, response.text
            else:
                assert response.status_code == 409, response.text

        # --- consents

        @rule(customer=customers, channel=st.sampled_from(CHANNELS), granted=st.booleans())
        def set_consent(self, customer: str, channel: str, granted: bool) -> None:
            body = {"purpose": "marketing", "channel": channel, "granted": granted}
            response = self.call("PUT", f"/customers/{customer}/consents", json=body)
            assert response.status_code == 200, response.text
            self.model.consents[(customer, channel)] = granted
            self.check_consents(customer, response.json())

        def check_consents(self, customer: str, receipt: dict[str, Any]) -> None:
            shown = {
                (customer, c["channel"]): c["granted"]
                for c in receipt["consents"]
                if c["purpose"] == "marketing"
            }
            expected = {key: v for key, v in self.model.consents.items() if key[0] == customer}
            assert shown == expected, (shown, expected)

        # --- orders through the tracking API

        @rule(target=sent_batches, customer=customers, cents=st.integers(1, 100_000))
        def track_order(self, customer: str, cents: int) -> dict[str, Any]:
            revenue = Decimal(cents) / 100
            batch = {
                "batch": [
                    {
                        "type": "track",
                        "userId": customer,
                        "event": "Order Completed",
                        "messageId": f"m-{uuid.uuid4().hex}",
                        "properties": {
                            "order_id": f"o-{uuid.uuid4().hex}",
                            "revenue": str(revenue),
                        },
                    }
                ]
            }
            self.post_batch(batch)
            self.model.orders[customer].append(revenue)
            return batch

        @rule(batch=sent_batches)
        def replay_batch(self, batch: dict[str, Any]) -> None:
            """A client retry: the same messageId is accepted and counts nothing more."""
            self.post_batch(batch)

        @rule(customer=customers)
        def metrics_match(self, customer: str) -> None:
            expected = (
                len(self.model.orders[customer]),
                sum(self.model.orders[customer], Decimal(0)),
            )

            def read() -> tuple[int, Decimal]:
                metrics = self.call("GET", f"/customers/{customer}/metrics").json()
                return metrics["orders"], Decimal(metrics["revenue"])

            self.until_equal(read, expected, f"metrics of {customer}")

        @rule(customer=customers)
        def timeline_lists_each_order_once(self, customer: str) -> None:
            def read() -> int:
                page = self.call(
                    "GET",
                    f"/customers/{customer}/timeline",
                    params={"type": "rapport.order.completed.v1", "limit": 500},
                ).json()
                return len(page["items"])

            self.until_equal(read, len(self.model.orders[customer]), f"timeline of {customer}")

        # --- stops and crashes

        @precondition(lambda self: self.restarts < RESTARTS_PER_RUN)
        @rule()
        def restart_gracefully(self) -> None:
            stack.stop(["profile"])
            self.start_again()

        @precondition(lambda self: self.restarts < RESTARTS_PER_RUN)
        @rule(customer=customers, cents=st.integers(1, 100_000))
        def crash_right_after_an_order(self, customer: str, cents: int) -> None:
            """SIGKILL while the order may still sit in the outbox, unpublished."""
            self.track_order(customer, cents)
            process = stack.services.pop("profile").process
            process.kill()
            process.wait(10)
            self.start_again()

        def start_again(self) -> None:
            self.restarts += 1
            stack.start(["profile"])
            stack.wait_ready(timeout=60)
            for customer, email in self.model.emails.items():
                shown = self.call("GET", f"/customers/{customer}").json()
                assert shown["email"] == email
                assert shown["first_name"] == self.model.first_names[customer]
                receipt = self.call("GET", f"/customers/{customer}/consents").json()
                self.check_consents(customer, receipt)

    return ProfileModel


def test_profile_keeps_to_the_model_across_restarts_and_crashes(profile_stack: Stack) -> None:
    machine = machine_for(profile_stack)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=2,
            stateful_step_count=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
