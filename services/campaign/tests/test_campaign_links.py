"""The links in messages: tokens expire, and `/t` follows only a link of the message the
token names. Through the routes on SQLite and PostgreSQL, without a broker."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeSerializer
from sqlmodel import select

from rapport_campaign.campaigns import service as campaign_service
from rapport_campaign.campaigns.models import CampaignCreate
from rapport_campaign.main import create_app
from rapport_campaign.messaging import service as messaging_service
from rapport_campaign.messaging.models import Message
from rapport_campaign.settings import Settings
from rapport_campaign.tracking import service as tracking_service
from rapport_campaign.tracking.models import Click
from rapport_campaign.tracking.tokens import ExpiredToken, InvalidToken, Tokens
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork
from rapport_events.db import SessionFactory, transaction
from rapport_events.types import ConsentGranted, CustomerRegistered

Deliver = Callable[..., Awaitable[Any]]
SECRET = "k3Jd9-x0QmZr7TqV2bLw5nYp8sHc4uEa1GfR6oDi"
DAY_S = 86_400
TEMPLATE = "Hi {{ customer.first_name }}: {{ cta_url }}, {{ track('https://shop.example/boots') }}"


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def minted_days_ago(monkeypatch: pytest.MonkeyPatch, days: float) -> None:
    """Tokens made from now on carry a time `days` in the past."""
    made_at = int(time.time() - days * DAY_S)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: made_at)


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    return Tokens(SECRET, settings.public_url, settings.link_token_max_age_days)


@pytest.fixture
async def sent(
    sessions: SessionFactory, settings: Settings, tokens: Tokens, deliver: Deliver
) -> Message:
    """One e-mail sent to ann with the campaign's link and one link of its template."""
    await deliver(
        CustomerRegistered(
            customer_id="ann", email="ann@example.com", first_name="Ann", last_name="Tester"
        ),
        ConsentGranted(
            customer_id="ann", purpose="marketing", channel="email", source="web_form", version=1
        ),
    )
    campaign = CampaignCreate.model_validate(
        {
            "name": "Spring",
            "channel": "email",
            "variants": [{"name": "A", "subject": "Spring", "body": TEMPLATE}],
            "link": "https://shop.example/spring",
            "audience": {"customer_ids": ["ann"]},
        }
    )
    async with transaction(sessions) as session:
        created = await campaign_service.create_campaign(SqlCampaignUnitOfWork(session), campaign)
        await campaign_service.launch_campaign(SqlCampaignUnitOfWork(session), created.id, None)
    async with transaction(sessions) as session:
        [message] = await messaging_service.claim_due(
            SqlCampaignUnitOfWork(session, settings.kafka.topic), settings
        )
    async with transaction(sessions) as session:
        outgoing = await messaging_service.prepare(
            SqlCampaignUnitOfWork(session, settings.kafka.topic),
            message.id,
            settings,
            tokens,
            messaging_service.Recommender(),
        )
        assert outgoing is not None
    async with sessions() as session:
        row = await session.get(Message, message.id)
        assert row is not None
        return row


@pytest.fixture
async def client(
    sessions: SessionFactory, settings: Settings, tokens: Tokens
) -> AsyncIterator[httpx.AsyncClient]:
    """The campaign routes on the test database; no lifespan, so no broker."""
    app = create_app(settings)
    app.state.runtime = SimpleNamespace(sessions=sessions)
    app.state.tokens = tokens
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://campaign.test") as http:
        yield http


async def clicks(sessions: SessionFactory) -> list[Click]:
    async with sessions() as session:
        return list((await session.exec(select(Click))).all())


class TestTokensExpire:
    def test_a_token_within_its_age_is_accepted(
        self, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        minted_days_ago(monkeypatch, 89)
        url = tokens.click_url("m-1", "https://shop.example/a")
        monkeypatch.undo()

        assert tokens.click(token_of(url)).url == "https://shop.example/a"

    def test_every_kind_of_token_older_than_its_age_is_expired(
        self, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        minted_days_ago(monkeypatch, 91)
        click = tokens.click_url("m-1", "https://shop.example/a")
        pixel = tokens.open_url("m-1")
        unsubscribe = tokens.unsubscribe_url("m-1", "ann", "email")
        monkeypatch.undo()

        with pytest.raises(ExpiredToken):
            tokens.click(token_of(click))
        with pytest.raises(ExpiredToken):
            tokens.open(token_of(pixel))
        with pytest.raises(ExpiredToken):
            tokens.unsubscribe(token_of(unsubscribe))

    def test_the_maximum_age_is_a_setting(
        self, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert settings.link_token_max_age_days == 90
        monkeypatch.setenv("CAMPAIGN_LINK_TOKEN_MAX_AGE_DAYS", "1")
        short = Tokens(SECRET, settings.public_url, Settings().link_token_max_age_days)
        minted_days_ago(monkeypatch, 2)
        url = short.click_url("m-1", "https://shop.example/a")
        monkeypatch.undo()

        with pytest.raises(ExpiredToken):
            short.click(token_of(url))

    def test_a_token_made_before_tokens_carried_a_time_is_refused(self, tokens: Tokens) -> None:
        old = URLSafeSerializer(SECRET, salt="rapport.campaign.click").dumps(
            ["m-1", "https://shop.example/a"]
        )
        with pytest.raises(InvalidToken) as refused:
            tokens.click(old)
        assert not isinstance(refused.value, ExpiredToken)


class TestSendingKeepsTheLinks:
    async def test_the_campaign_link_and_every_tracked_link_are_kept_on_the_message(
        self, sent: Message
    ) -> None:
        assert tracking_service.message_links(sent) == [
            "https://shop.example/boots",
            "https://shop.example/spring",
        ]

    async def test_a_retry_keeps_the_links_of_the_attempt_before(
        self, sent: Message, sessions: SessionFactory, settings: Settings, tokens: Tokens
    ) -> None:
        async with transaction(sessions) as session:
            row = await session.get(Message, sent.id)
            assert row is not None
            row.status = "sending"  # as a retry after a failed attempt finds it
            row.context = {**row.context, "links": ["https://shop.example/yesterday"]}
            session.add(row)
        async with transaction(sessions) as session:
            assert await messaging_service.prepare(
                SqlCampaignUnitOfWork(session, settings.kafka.topic),
                sent.id,
                settings,
                tokens,
                messaging_service.Recommender(),
            )
        async with sessions() as session:
            again = await session.get(Message, sent.id)
        assert again is not None
        assert "https://shop.example/yesterday" in tracking_service.message_links(again)
        assert "https://shop.example/boots" in tracking_service.message_links(again)


class TestClickRoute:
    async def test_a_link_of_the_message_is_recorded_and_followed(
        self, client: httpx.AsyncClient, sent: Message, tokens: Tokens, sessions: SessionFactory
    ) -> None:
        response = await client.get(
            f"/t/{token_of(tokens.click_url(sent.id, 'https://shop.example/boots'))}"
        )

        assert response.status_code == 302
        assert response.headers["location"].startswith("https://shop.example/boots?utm_source=")
        assert [click.url for click in await clicks(sessions)] == ["https://shop.example/boots"]

    async def test_a_signed_url_the_message_was_not_sent_with_is_refused_and_not_recorded(
        self, client: httpx.AsyncClient, sent: Message, tokens: Tokens, sessions: SessionFactory
    ) -> None:
        forged = tokens.click_url(sent.id, "https://evil.example/login")

        response = await client.get(f"/t/{token_of(forged)}")

        assert response.status_code == 404
        assert "location" not in response.headers
        assert await clicks(sessions) == []
        async with sessions() as session:
            message = await session.get(Message, sent.id)
        assert message is not None and message.clicked_at is None and message.opened_at is None

    async def test_a_signed_token_of_a_message_that_does_not_exist_is_refused(
        self, client: httpx.AsyncClient, sent: Message, tokens: Tokens, sessions: SessionFactory
    ) -> None:
        forged = tokens.click_url("no-such-message", "https://shop.example/spring")

        response = await client.get(f"/t/{token_of(forged)}")

        assert response.status_code == 404
        assert await clicks(sessions) == []

    async def test_an_expired_link_is_gone_and_not_recorded(
        self,
        client: httpx.AsyncClient,
        sent: Message,
        tokens: Tokens,
        sessions: SessionFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        minted_days_ago(monkeypatch, 91)
        expired = tokens.click_url(sent.id, "https://shop.example/spring")
        monkeypatch.undo()

        response = await client.get(f"/t/{token_of(expired)}")

        assert response.status_code == 410
        assert "expired" in response.json()["detail"]
        assert await clicks(sessions) == []

    def test_the_openapi_documents_the_refusals_of_every_link(self, settings: Settings) -> None:
        paths = create_app(settings).openapi()["paths"]
        for path, method in (("/t/{token}", "get"), ("/o/{token}", "get"), ("/u/{token}", "post")):
            assert {"404", "410"} <= set(paths[path][method]["responses"]), path
