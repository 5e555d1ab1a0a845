"""Profile's Settings: production unless told otherwise, no weak secret there, and names
given in code win over the environment."""

import logging

import pytest
from pydantic import ValidationError

from rapport_events.settings import KafkaSettings
from rapport_profile.settings import DEVELOPMENT_TOKEN, DEVELOPMENT_WRITE_KEY, Settings

TOKEN = "k3Jd9-x0QmZr7TqV2bLw5nYp8sHc4uEa1GfR6oDi"
# Strong key-encryption keys: the development one is refused outside development.
KAFKA = KafkaSettings(key_encryption_keys=[f"k1:{TOKEN}"])
WRITE_KEY = "wK8-Qz2vN5xLr0Tj7bYc4mHs9pDa6eGf3uRi1oSt"
WEAK = ["", "x", DEVELOPMENT_TOKEN, "changeme", "a" * 40, "replace-with-a-long-random-token"]


def production(**values: object) -> Settings:
    return Settings(
        **{
            "environment": "production",
            "api_token": TOKEN,
            "write_keys": [WRITE_KEY],
            "kafka": KAFKA,
            **values,
        }
    )


class TestOutsideDevelopment:
    def test_strong_secrets_start(self) -> None:
        assert production().api_token == TOKEN

    @pytest.mark.parametrize("token", WEAK)
    def test_a_weak_api_token_is_refused_by_name(self, token: str) -> None:
        with pytest.raises(ValidationError, match="PROFILE_API_TOKEN"):
            production(api_token=token)

    @pytest.mark.parametrize("key", [DEVELOPMENT_WRITE_KEY, "k"])
    def test_a_weak_write_key_is_refused_by_name(self, key: str) -> None:
        with pytest.raises(ValidationError, match=r"PROFILE_WRITE_KEYS\[1\]"):
            production(write_keys=[WRITE_KEY, key])

    def test_the_development_key_encryption_key_is_refused_by_name(self) -> None:
        with pytest.raises(ValidationError, match=r"KAFKA_KEY_ENCRYPTION_KEYS\[dev\]"):
            production(kafka=KafkaSettings())

    def test_a_weak_services_token_is_refused_by_name(self) -> None:
        with pytest.raises(ValidationError, match="PROFILE_SERVICES_TOKEN"):
            production(services_token="short")

    def test_a_one_character_token_from_the_environment_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RAPPORT_ENV", "production")
        monkeypatch.setenv("RAPPORT_API_TOKEN", "x")
        monkeypatch.setenv("PROFILE_WRITE_KEYS", f'["{WRITE_KEY}"]')
        with pytest.raises(ValidationError, match="RAPPORT_API_TOKEN"):
            Settings()

    def test_production_is_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("RAPPORT_ENV", raising=False)
        monkeypatch.delenv("PROFILE_ENVIRONMENT", raising=False)
        with pytest.raises(ValidationError, match="PROFILE_API_TOKEN"):
            Settings()


class TestInDevelopment:
    def test_the_published_secrets_start_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="rapport.environment"):
            settings = Settings(environment="development", api_token="x")
        assert settings.write_keys == [DEVELOPMENT_WRITE_KEY]
        assert "PROFILE_API_TOKEN" in caplog.text and "PROFILE_WRITE_KEYS[0]" in caplog.text


class TestSettings:
    def test_names_given_in_code_win(self) -> None:
        settings = Settings(database_url="sqlite:///x.db", api_token="from-code")
        assert (settings.database_url, settings.api_token) == ("sqlite:///x.db", "from-code")

    def test_the_development_token_is_refused_outside_development(self) -> None:
        with pytest.raises(ValidationError):
            Settings(environment="production", api_token=DEVELOPMENT_TOKEN)
