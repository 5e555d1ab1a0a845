"""Partners: listed for admins and privacy officers, registered and deleted by admins only
(the key shown once, never cached; a deletion confirmed by typing the partner's name), and
each partner's disclosure ledger."""

import json

import pytest

from rapport_console.testing import CUSTOMER_ID, FakeServices
from rapport_partner_share.partners.models import PartnerCreate

from .conftest import Login, form_token, writes

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration


def posts(fakes: FakeServices) -> list[dict[str, object]]:
    return [json.loads(r.content) for r in fakes.requests if r.method == "POST"]


async def test_an_admin_registers_a_partner_and_sees_its_key_once(
    login: Login, fakes: FakeServices
) -> None:
    admin = await login("admin")
    token = form_token((await admin.get("/partners")).text)

    reply = await admin.post(
        "/partners",
        data={
            "csrf_token": token,
            "name": "Globex Hotels",
            "industry": "hospitality",
            "slices": ["contact", "loyalty", "bogus"],
            "purposes": "joint_offers, loyalty_match",
        },
    )

    assert reply.status_code == 201
    assert "rpk_" in reply.text and reply.headers["cache-control"] == "no-store"
    (sent,) = posts(fakes)
    assert sent["slices"] == ["contact", "loyalty"]  # only slices partner-share knows
    PartnerCreate.model_validate(sent)


async def test_a_refused_registration_says_why(login: Login) -> None:
    admin = await login("admin")
    token = form_token((await admin.get("/partners")).text)

    reply = await admin.post(
        "/partners",
        data={"csrf_token": token, "name": "X", "industry": "y", "purposes": "joint_offers"},
    )

    assert reply.status_code == 400 and "at least one" in reply.text


async def test_the_ledger_of_a_partner(login: Login) -> None:
    officer = await login("privacy")

    listing = await officer.get("/partners")
    ledger = await officer.get("/partners/p-1")

    assert 'href="/partners/p-1"' in listing.text
    assert 'data-testid="register-partner"' not in listing.text  # officers do not register
    assert (
        f'href="/customers/{CUSTOMER_ID}"' in ledger.text and "contact, demographics" in ledger.text
    )


async def test_only_admins_register_and_support_sees_no_partners(
    login: Login, fakes: FakeServices
) -> None:
    officer, agent = await login("privacy"), await login("support")
    token = form_token((await officer.get("/partners")).text)

    refused = await officer.post(
        "/partners",
        data={
            "csrf_token": token,
            "name": "X",
            "industry": "y",
            "slices": "contact",
            "purposes": "p",
        },
    )

    assert refused.status_code == 403
    assert posts(fakes) == []
    assert (await agent.get("/partners")).status_code == 403


class TestDelete:
    async def test_an_admin_deletes_a_partner_after_typing_its_name(
        self, login: Login, fakes: FakeServices
    ) -> None:
        admin = await login("admin")
        page = await admin.get("/partners/p-1")

        reply = await admin.post(
            "/partners/p-1/delete",
            data={"csrf_token": form_token(page.text), "confirm": " Acme Travel "},
        )

        assert 'data-testid="delete-partner"' in page.text
        assert reply.status_code == 303 and reply.headers["location"] == "/partners"
        assert writes(fakes, "DELETE") == [("/partners/p-1", None)]
        assert 'href="/partners/p-1"' not in (await admin.get("/partners")).text

    async def test_without_the_name_nothing_is_deleted(
        self, login: Login, fakes: FakeServices
    ) -> None:
        admin = await login("admin")
        token = form_token((await admin.get("/partners/p-1")).text)

        wrong = await admin.post(
            "/partners/p-1/delete", data={"csrf_token": token, "confirm": "yes"}
        )
        unknown = await admin.post(
            "/partners/p-9/delete", data={"csrf_token": token, "confirm": "Acme Travel"}
        )

        assert wrong.status_code == 400 and "type the partner" in wrong.text
        assert unknown.status_code == 404
        assert writes(fakes) == []

    async def test_privacy_officers_may_not_delete_and_forged_forms_delete_nothing(
        self, login: Login, fakes: FakeServices
    ) -> None:
        officer, admin = await login("privacy"), await login("admin")
        page = await officer.get("/partners/p-1")
        form = {"csrf_token": form_token(page.text), "confirm": "Acme Travel"}

        refused = await officer.post("/partners/p-1/delete", data=form)
        forged = await admin.post("/partners/p-1/delete", data=form)

        assert 'data-testid="delete-partner"' not in page.text
        assert refused.status_code == 403 and forged.status_code == 403
        assert writes(fakes) == []
