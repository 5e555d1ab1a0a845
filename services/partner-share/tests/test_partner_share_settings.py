"""Partner-share's Settings: production unless told otherwise, and no weak secret there."""

import logging

import pytest
from pydantic import ValidationError

from rapport_events.settings import KafkaSettings
from rapport_partner_share.settings import DEVELOPMENT_TOKEN, Settings

TOKEN = "k3Jd9-x0QmZr7TqV2bLw5nYp8sHc4uEa1GfR6oDi"
# Strong key-encryption keys: the development one is refused outside development.
KAFKA = KafkaSettings(key_encryption_keys=[f"k1:{TOKEN}"])
LEDGER_KEY = "Vq8-Zt3nWc0xLk5yHr2mPb7sJd4gFe9uTa1oNi6"
WEAK = ["", "x", DEVELOPMENT_TOKEN, "changeme", "a" * 40, "replace-with-a-long-random-token"]


def production(**values: object) -> Settings:
    values = {
        "environment": "production",
        "api_token": TOKEN,
        "ledger_key": LEDGER_KEY,
        "kafka": KAFKA,
        **values,
    }
    return Settings(**values)


class TestOutsideDevelopment:
    def test_strong_secrets_start(self) -> None:
        assert production().profile_token == TOKEN

    @pytest.mark.parametrize("token", WEAK)
    def test_a_weak_api_token_is_refused_by_name(self, token: str) -> None:
        with pytest.raises(ValidationError, match="PARTNER_SHARE_API_TOKEN"):
            production(api_token=token)

    def test_a_weak_profile_token_is_refused_by_name(self) -> None:
        with pytest.raises(ValidationError, match="PARTNER_SHARE_PROFILE_API_TOKEN"):
            production(profile_api_token=DEVELOPMENT_TOKEN)

    @pytest.mark.parametrize("key", WEAK + ["rapport-dev-ledger-key"])
    def test_a_weak_ledger_key_is_refused_by_name(self, key: str) -> None:
        with pytest.raises(ValidationError, match="PARTNER_SHARE_LEDGER_KEY"):
            production(ledger_key=key)

    def test_the_ledger_key_comes_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PARTNER_SHARE_LEDGER_KEY", LEDGER_KEY)
        settings = Settings(environment="production", api_token=TOKEN, kafka=KAFKA)
        assert settings.ledger_key == LEDGER_KEY

    def test_a_one_character_token_from_the_environment_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAPPORT_ENV", "production")
        monkeypatch.setenv("RAPPORT_API_TOKEN", "x")
        with pytest.raises(ValidationError, match="RAPPORT_API_TOKEN"):
            Settings()

    def test_production_is_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("RAPPORT_ENV", raising=False)
        monkeypatch.delenv("PARTNER_SHARE_ENVIRONMENT", raising=False)
        with pytest.raises(ValidationError, match="PARTNER_SHARE_API_TOKEN"):
            Settings()


class TestInDevelopment:
    def test_the_published_secrets_start_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="rapport.environment"):
            settings = Settings(environment="development")
        assert settings.api_token == DEVELOPMENT_TOKEN
        assert "PARTNER_SHARE_API_TOKEN" in caplog.text
