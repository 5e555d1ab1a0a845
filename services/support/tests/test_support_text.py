"""Unit tests without a database: sentiment, mention kinds, similarity, webhook signatures,
settings."""

import json
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from rapport_support.customers.models import handle_key
from rapport_support.mentions import sentiment, webhooks
from rapport_support.mentions.models import SupportMention, SupportMentionReply
from rapport_support.mentions.service import social_subject
from rapport_support.products.models import model_key
from rapport_support.settings import DEVELOPMENT_TOKEN, Settings, SocialWebhook
from rapport_support.tickets import similarity

SECRET = "x" * 32


class TestSentiment:
    @pytest.mark.parametrize(
        ("said", "label"),
        [
            ("My Barista X2 broke after two days, terrible support!", "negative"),
            ("Love my new laptop, the screen is gorgeous", "positive"),
            ("The order arrived on Tuesday", "neutral"),
        ],
    )
    def test_labels_follow_vader(self, said: str, label: str) -> None:
        assert sentiment.sentiment(said).label == label

    def test_the_score_is_vaders_compound(self) -> None:
        assert -1 <= sentiment.sentiment("awful, awful, awful").compound < -0.5


class TestMentionKind:
    @pytest.mark.parametrize(
        ("said", "kind"),
        [
            ("This is the worst kettle ever", "complaint"),
            ("How do I reset the router", "question"),
            ("Does the X2 take pods?", "question"),
            ("Brilliant service, thank you", "praise"),
            ("Unboxing my new phone", "other"),
        ],
    )
    def test_kinds(self, said: str, kind: str) -> None:
        assert sentiment.mention_kind(said, sentiment.sentiment(said).label) == kind


class TestMostSimilar:
    DOCUMENTS = [
        ("leak", "Machine leaks water from the tank"),
        ("grinder", "Grinder makes a loud noise"),
        ("pairing", "The app will not pair over bluetooth"),
    ]

    def test_the_closest_document_comes_first(self) -> None:
        found = similarity.most_similar(
            "water leaking out of the tank", self.DOCUMENTS, limit=3, min_score=0.05
        )
        assert [match.key for match in found] == ["leak"]
        assert 0 < found[0].score <= 1

    def test_nothing_in_common_finds_nothing(self) -> None:
        assert (
            similarity.most_similar("invoice address", self.DOCUMENTS, limit=3, min_score=0.05)
            == []
        )

    def test_stop_words_alone_find_nothing_without_failing(self) -> None:
        assert similarity.most_similar("the and of", self.DOCUMENTS, limit=3, min_score=0.0) == []


class TestKeys:
    def test_models_and_handles_compare_loosely(self) -> None:
        assert model_key("  Barista   X2 ") == model_key("barista x2") == "barista x2"
        assert model_key("   ") is None
        assert handle_key(" @Ada_L ") == "ada_l"

    def test_an_unknown_handle_gets_a_short_stable_subject(self) -> None:
        assert social_subject("twitter", "ada_l") == "social:twitter:ada_l"
        long = social_subject("mastodon", "a" * 80)
        assert len(long) <= 64 and long == social_subject("mastodon", "a" * 80)


class TestSignature:
    def _reply(self) -> tuple[SupportMentionReply, SupportMention]:
        at = datetime(2026, 5, 4, 12, tzinfo=UTC)
        mention = SupportMention(
            id="m-1",
            platform="twitter",
            handle="@ada_l",
            handle_key="ada_l",
            external_id="99",
            text="Broken",
            url="https://twitter.com/ada_l/status/99",
            posted_at=at,
            received_at=at,
            subject_id="cust-1",
            sentiment="negative",
            sentiment_score=-0.5,
            kind="complaint",
        )
        reply = SupportMentionReply(
            id="r-1", mention_id="m-1", text="Sorry!", author="pr", created_at=at, attempts=1
        )
        return reply, mention

    def test_the_signature_is_hmac_sha256_of_the_body(self) -> None:
        body = b'{"a":1}'
        signature = webhooks.sign(SECRET, body)
        assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
        assert webhooks.verify(SECRET, body, signature)
        assert not webhooks.verify(SECRET, body + b" ", signature)
        assert not webhooks.verify("y" * 32, body, signature)

    async def test_a_post_carries_the_signed_body_and_delivery_id(self) -> None:
        seen: list[httpx.Request] = []

        def receive(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(202)

        hook = SocialWebhook(url="https://hooks.example/twitter", secret=SECRET)  # type: ignore[arg-type]
        reply, mention = self._reply()
        async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as client:
            outcome = await webhooks.post_reply(client, hook, reply, mention, timeout_s=1)

        assert (outcome.status_code, outcome.error) == (202, None)
        [request] = seen
        body = request.content
        assert webhooks.verify(SECRET, body, request.headers[webhooks.SIGNATURE_HEADER])
        assert request.headers[webhooks.DELIVERY_HEADER] == "r-1"
        payload = json.loads(body)
        assert (payload["text"], payload["in_reply_to"], payload["handle"]) == (
            "Sorry!",
            "99",
            "@ada_l",
        )

    async def test_a_network_failure_is_reported_not_raised(self) -> None:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        hook = SocialWebhook(url="https://hooks.example/twitter", secret=SECRET)  # type: ignore[arg-type]
        reply, mention = self._reply()
        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
            outcome = await webhooks.post_reply(client, hook, reply, mention, timeout_s=1)

        assert outcome.status_code is None
        assert outcome.error is not None and "ConnectError" in outcome.error


class TestSettings:
    def test_names_given_in_code_win(self) -> None:
        settings = Settings(database_url="sqlite:///x.db", api_token="from-code")
        assert (settings.database_url, settings.api_token) == ("sqlite:///x.db", "from-code")

    def test_the_development_token_is_refused_outside_development(self) -> None:
        with pytest.raises(ValidationError):
            Settings(environment="production", api_token=DEVELOPMENT_TOKEN)

    def test_webhooks_and_warranties_come_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(
            "SUPPORT_SOCIAL_WEBHOOKS",
            json.dumps({"Twitter": {"url": "https://hooks.example/t", "secret": SECRET}}),
        )
        monkeypatch.setenv("SUPPORT_WARRANTY_MONTHS_BY_CATEGORY", '{"Laptops": 12}')

        settings = Settings()

        assert str(settings.social_webhooks["twitter"].url) == "https://hooks.example/t"
        assert settings.warranty_months_for("ZenBook 14", "laptops") == 12
        assert settings.warranty_months_for(None, None) == 24

    def test_a_short_webhook_secret_is_refused(self) -> None:
        with pytest.raises(ValidationError):
            SocialWebhook(url="https://hooks.example/t", secret="short")  # type: ignore[arg-type]
