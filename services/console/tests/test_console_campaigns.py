"""Campaigns: a marketer saves a draft, previews its message for one customer, launches
it and follows the funnel; bad input is a form error, other roles and forged forms change
nothing."""

import pytest

from rapport_campaign.campaigns.models import CampaignCreate, MessagePreview
from rapport_console.testing import CUSTOMER_ID, FUNNEL_COUNTS, SEGMENT_ID, FakeServices

from .conftest import Login, form_token, writes

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration

NEW = "/campaigns/cmp-new"


def campaign_form(token: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "name": "Winter boots",
        "channel": "email",
        "segment_id": SEGMENT_ID,
        "subject": "{{ customer.first_name }}, boots for the cold",
        "body": "Hello {{ customer.first_name }}: {{ cta_url }}",
        "link": "https://shop.example/boots",
        **fields,
    }


class TestReport:
    async def test_a_report_draws_the_funnel_with_its_numbers(self, login: Login) -> None:
        marketer = await login("marketer")

        listing = await marketer.get("/campaigns")
        report = await marketer.get("/campaigns/cmp-1")

        assert 'href="/campaigns/cmp-1"' in listing.text
        assert 'data-testid="chart-funnel"' in report.text
        for step, count in FUNNEL_COUNTS.items():
            assert f"<th>{step}</th><td>{count}</td>" in report.text
        assert "380.00" in report.text
        assert 'data-testid="launch"' not in report.text  # completed: nothing to launch

    async def test_an_unknown_campaign_is_404(self, login: Login) -> None:
        marketer = await login("marketer")

        assert (await marketer.get("/campaigns/cmp-nope")).status_code == 404


class TestCreate:
    async def test_a_marketer_saves_a_draft(self, login: Login, fakes: FakeServices) -> None:
        marketer = await login("marketer")
        page = await marketer.get("/campaigns/new")

        reply = await marketer.post("/campaigns", data=campaign_form(form_token(page.text)))

        assert f'<option value="{SEGMENT_ID}">Big spenders (17)</option>' in page.text
        assert reply.status_code == 303 and reply.headers["location"] == NEW
        ((_, sent),) = writes(fakes, "POST", "/campaigns")
        CampaignCreate.model_validate(sent)
        assert sent["audience"] == {"segment_id": SEGMENT_ID}
        assert sent["variants"][0]["subject"].startswith("{{ customer.first_name }}")
        draft = await marketer.get(NEW)
        assert 'data-testid="campaign-status">draft<' in draft.text
        assert 'data-testid="launch"' in draft.text

    async def test_an_email_without_a_subject_is_a_form_error_and_asks_nothing(
        self, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/campaigns/new")).text)

        reply = await marketer.post("/campaigns", data=campaign_form(token, subject=" "))

        assert reply.status_code == 400
        assert "an e-mail needs a subject" in reply.text
        assert 'value="Winter boots"' in reply.text  # what was typed stays
        assert writes(fakes) == []

    async def test_a_template_campaign_refuses_is_explained(
        self, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/campaigns/new")).text)

        reply = await marketer.post("/campaigns", data=campaign_form(token, body="Hi {{ nope }}"))

        assert reply.status_code == 400
        assert "&#39;nope&#39; is undefined" in reply.text
        assert "Hi {{ nope }}</textarea>" in reply.text

    async def test_an_unknown_channel_is_refused(self, login: Login, fakes: FakeServices) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/campaigns/new")).text)

        reply = await marketer.post("/campaigns", data=campaign_form(token, channel="fax"))

        assert reply.status_code == 400 and "the channel is one of" in reply.text
        assert writes(fakes) == []


class TestPreview:
    async def test_by_email_renders_the_message_and_logs_the_view(
        self, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/campaigns/new")).text)
        await marketer.post("/campaigns", data=campaign_form(token))

        page = await marketer.get(NEW, params={"customer": "ada@example.com"})

        assert page.status_code == 200
        assert 'data-testid="preview-subject">Ada, the winter sale is on<' in page.text
        asked = [r for r in fakes.requests if r.url.path == f"{NEW}/preview"]
        assert [dict(r.url.params) for r in asked] == [{"customer_id": CUSTOMER_ID}]
        MessagePreview.model_validate(
            fakes.answer("campaign", f"{NEW}/preview", asked[0].url.params)
        )
        admin = await login("admin")
        log = (await admin.get("/access-log", params={"customer": CUSTOMER_ID})).text
        assert "<td>marketer</td><td>marketer</td>" in log and "<td>campaign-preview</td>" in log

    async def test_an_unknown_customer_is_404_on_the_page(self, login: Login) -> None:
        marketer = await login("marketer")

        by_email = await marketer.get("/campaigns/cmp-1", params={"customer": "x@example.com"})
        by_id = await marketer.get("/campaigns/cmp-1", params={"customer": "c-404"})

        assert by_email.status_code == 404 and "No customer has the e-mail" in by_email.text
        assert by_id.status_code == 404 and "does not know the customer c-404" in by_id.text
        assert 'data-testid="chart-funnel"' in by_id.text  # the rest of the page is there


class TestLaunch:
    async def test_a_launched_campaign_shows_its_funnel(
        self, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/campaigns/new")).text)
        await marketer.post("/campaigns", data=campaign_form(token))

        reply = await marketer.post(f"{NEW}/launch", data={"csrf_token": token})
        again = await marketer.post(f"{NEW}/launch", data={"csrf_token": token})

        assert reply.status_code == 303 and reply.headers["location"] == NEW
        assert writes(fakes, "POST", f"{NEW}/launch") == [(f"{NEW}/launch", None)] * 2
        page = (await marketer.get(NEW)).text
        assert 'data-testid="campaign-status">sending<' in page
        assert f"<th>sent</th><td>{FUNNEL_COUNTS['sent']}</td>" in page
        assert again.status_code == 409 and "only a draft is launched" in again.text

    async def test_support_may_not_create_or_launch(
        self, login: Login, fakes: FakeServices
    ) -> None:
        agent = await login("support")
        token = form_token((await agent.get("/customers")).text)

        created = await agent.post("/campaigns", data=campaign_form(token))
        launched = await agent.post("/campaigns/cmp-1/launch", data={"csrf_token": token})

        assert created.status_code == 403 and launched.status_code == 403
        assert (await agent.get("/campaigns/new")).status_code == 403
        assert writes(fakes) == []

    async def test_a_form_without_its_token_changes_nothing(
        self, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")

        created = await marketer.post("/campaigns", data=campaign_form("forged"))
        launched = await marketer.post("/campaigns/cmp-1/launch", data={})

        assert created.status_code == 403 and launched.status_code == 403
        assert writes(fakes) == []
