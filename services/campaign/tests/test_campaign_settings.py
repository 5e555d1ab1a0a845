"""Campaign's Settings: production unless told otherwise, and no weak secret there."""

import logging

import pytest
from pydantic import ValidationError

from rapport_campaign.settings import DEVELOPMENT_TOKEN, Settings
from rapport_events.settings import KafkaSettings

TOKEN = "k3Jd9-x0QmZr7TqV2bLw5nYp8sHc4uEa1GfR6oDi"
# Strong key-encryption keys: the development one is refused outside development.
KAFKA = KafkaSettings(key_encryption_keys=[f"k1:{TOKEN}"])
SIGNING = "sG7-Lq0xW2vN9bTj4mYc8rHs5pDa1eKf6uZi3oQt"
WEBHOOK = "wH2-Nq5vX8zLr1Tj0bYc7mKs4pDa9eGf6uRi3oSl"
WEAK = ["", "x", DEVELOPMENT_TOKEN, "changeme", "a" * 40, "replace-with-a-long-random-token"]
SECRETS = {
    "api_token": "CAMPAIGN_API_TOKEN",
    "profile_token": "CAMPAIGN_PROFILE_TOKEN",
    "signing_secret": "CAMPAIGN_SIGNING_SECRET",
    "webhook_secret": "CAMPAIGN_WEBHOOK_SECRET",
}


def production(**values: object) -> Settings:
    strong = {
        "api_token": TOKEN,
        "profile_token": TOKEN,
        "signing_secret": SIGNING,
        "webhook_secret": WEBHOOK,
    }
    return Settings(**{"environment": "production", "kafka": KAFKA, **strong, **values})


class TestOutsideDevelopment:
    def test_strong_secrets_start(self) -> None:
        assert production().signing_secret == SIGNING

    @pytest.mark.parametrize("field", list(SECRETS))
    @pytest.mark.parametrize("value", WEAK)
    def test_a_weak_secret_is_refused_by_name(self, field: str, value: str) -> None:
        with pytest.raises(ValidationError, match=SECRETS[field]):
            production(**{field: value})

    def test_empty_signing_and_webhook_secrets_from_the_environment_are_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAPPORT_ENV", "production")
        monkeypatch.setenv("RAPPORT_API_TOKEN", TOKEN)
        monkeypatch.setenv("CAMPAIGN_SIGNING_SECRET", "")
        monkeypatch.setenv("CAMPAIGN_WEBHOOK_SECRET", "")
        with pytest.raises(ValidationError) as refused:
            Settings()
        message = str(refused.value)
        assert "CAMPAIGN_SIGNING_SECRET is empty" in message
        assert "CAMPAIGN_WEBHOOK_SECRET is empty" in message
        assert "API_TOKEN" not in message

    def test_a_one_character_token_from_the_environment_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAPPORT_ENV", "production")
        monkeypatch.setenv("RAPPORT_API_TOKEN", "x")
        monkeypatch.setenv("CAMPAIGN_SIGNING_SECRET", SIGNING)
        monkeypatch.setenv("CAMPAIGN_WEBHOOK_SECRET", WEBHOOK)
        with pytest.raises(ValidationError, match="RAPPORT_API_TOKEN"):
            Settings()

    def test_production_is_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("RAPPORT_ENV", raising=False)
        monkeypatch.delenv("CAMPAIGN_ENVIRONMENT", raising=False)
        with pytest.raises(ValidationError, match="CAMPAIGN_SIGNING_SECRET"):
            Settings()


class TestInDevelopment:
    def test_the_published_secrets_start_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="rapport.environment"):
            settings = Settings(environment="development", signing_secret="")
        assert settings.api_token == DEVELOPMENT_TOKEN
        assert "CAMPAIGN_SIGNING_SECRET is empty" in caplog.text
        assert "CAMPAIGN_WEBHOOK_SECRET is a published default" in caplog.text
