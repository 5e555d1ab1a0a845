"""Partners: listed for admins and privacy officers, registered by admins only (the key
shown once, never cached), and each partner's disclosure ledger."""

import json

from rapport_console.testing import CUSTOMER_ID, FakeServices
from rapport_partner_share.partners.models import PartnerCreate

from .conftest import Login, form_token


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
