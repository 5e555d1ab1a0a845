"""The environment notion and the one check of secrets every service's Settings runs."""

import logging
import secrets

import pytest

from rapport_events.environment import (
    DEVELOPMENT_TOKEN,
    MIN_SECRET_LENGTH,
    enforce_secrets,
    is_development,
    weakness,
)

STRONG = "k3Jd9-x0QmZr7TqV2bLw5nYp8sHc4uEa1GfR6oDi"


class TestWeakness:
    @pytest.mark.parametrize(
        ("value", "why"),
        [
            ("", "is empty"),
            ("   ", "is empty"),
            ("x", "is shorter than 32 characters"),
            (DEVELOPMENT_TOKEN, "is a published default"),
            ("rapport-local-compose-signing-secret", "is a published default"),
            ("changeme", "is a published default"),
            ("replace-with-a-long-random-token-of-at-least-32-chars", "is a template placeholder"),
            ("CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME", "is a template placeholder"),
            ("a" * 64, "has fewer than 8 distinct characters"),
            ("ab" * 32, "has fewer than 8 distinct characters"),
        ],
    )
    def test_guessable_values_are_named_for_what_makes_them_weak(
        self, value: str, why: str
    ) -> None:
        assert weakness(value) == why

    def test_a_generated_value_is_strong(self) -> None:
        for _ in range(100):
            assert weakness(secrets.token_urlsafe(32)) is None
            assert weakness(secrets.token_hex(16)) is None
        assert len(secrets.token_hex(16)) == MIN_SECRET_LENGTH


class TestEnforceSecrets:
    def test_outside_development_every_weak_secret_is_named(self) -> None:
        with pytest.raises(ValueError) as refused:
            enforce_secrets(
                "production", {"A_TOKEN": "", "B_SECRET": STRONG, "C_SECRET": DEVELOPMENT_TOKEN}
            )
        message = str(refused.value)
        assert "A_TOKEN is empty" in message and "C_SECRET is a published default" in message
        assert "B_SECRET" not in message
        assert "secrets.token_urlsafe(32)" in message

    def test_any_environment_but_development_is_strict(self) -> None:
        for environment in ("production", "staging", "prod", ""):
            with pytest.raises(ValueError, match="A_TOKEN"):
                enforce_secrets(environment, {"A_TOKEN": "short"})

    def test_in_development_weak_secrets_are_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="rapport.environment"):
            enforce_secrets(" Development ", {"A_TOKEN": DEVELOPMENT_TOKEN})
        assert "A_TOKEN is a published default" in caplog.text

    def test_a_secret_not_set_is_checked_where_it_falls_back_to(self) -> None:
        enforce_secrets("production", {"A_TOKEN": STRONG, "B_TOKEN": None})

    def test_development_is_only_development(self) -> None:
        assert is_development("development") and not is_development("dev")
