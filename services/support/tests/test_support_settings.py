"""Support's Settings: production unless told otherwise, and no weak secret there."""

import logging

import pytest
from pydantic import ValidationError

from rapport_events.settings import KafkaSettings
from rapport_support.settings import DEVELOPMENT_TOKEN, Settings

TOKEN = "k3Jd9-x0QmZr7TqV2bLw5nYp8sHc4uEa1GfR6oDi"
# Strong key-encryption keys: the development one is refused outside development.
KAFKA = KafkaSettings(key_encryption_keys=[f"k1:{TOKEN}"])
WEAK = ["", "x", DEVELOPMENT_TOKEN, "changeme", "a" * 40, "replace-with-a-long-random-token"]


def production(**values: object) -> Settings:
    return Settings(**{"environment": "production", "api_token": TOKEN, "kafka": KAFKA, **values})


def webhook(secret: str) -> dict[str, object]:
    return {"Twitter": {"url": "https://hooks.example/t", "secret": secret}}


class TestOutsideDevelopment:
    def test_strong_secrets_start(self) -> None:
        settings = production(social_webhooks=webhook(TOKEN))
        assert settings.social_webhooks["twitter"].secret.get_secret_value() == TOKEN

    @pytest.mark.parametrize("token", WEAK)
    def test_a_weak_api_token_is_refused_by_name(self, token: str) -> None:
        with pytest.raises(ValidationError, match="SUPPORT_API_TOKEN"):
            production(api_token=token)

    def test_a_weak_social_webhook_secret_is_refused_by_name(self) -> None:
        with pytest.raises(ValidationError, match=r"SUPPORT_SOCIAL_WEBHOOKS\[Twitter\]\.secret"):
            production(social_webhooks=webhook("sixteen-chars-ok"))

    def test_a_one_character_token_from_the_environment_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAPPORT_ENV", "production")
        monkeypatch.setenv("RAPPORT_API_TOKEN", "x")
        with pytest.raises(ValidationError, match="RAPPORT_API_TOKEN"):
            Settings()

    def test_production_is_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("RAPPORT_ENV", raising=False)
        monkeypatch.delenv("SUPPORT_ENVIRONMENT", raising=False)
        with pytest.raises(ValidationError, match="SUPPORT_API_TOKEN"):
            Settings()


class TestInDevelopment:
    def test_the_published_secrets_start_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="rapport.environment"):
            settings = Settings(environment="development", social_webhooks=webhook("a" * 16))
        assert settings.api_token == DEVELOPMENT_TOKEN
        assert "SUPPORT_API_TOKEN" in caplog.text and "SUPPORT_SOCIAL_WEBHOOKS" in caplog.text
