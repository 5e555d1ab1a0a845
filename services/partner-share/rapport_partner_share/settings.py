"""Partner-share settings, from the environment (prefix PARTNER_SHARE_)."""

from typing import Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rapport_events.environment import (
    DEVELOPMENT_LEDGER_KEY,
    DEVELOPMENT_TOKEN,
    enforce_secrets,
    environment_field,
)
from rapport_events.limits import DEFAULT_MAX_BODY_BYTES
from rapport_events.settings import KafkaSettings

__all__ = ["DEVELOPMENT_TOKEN", "Settings", "get_settings"]


class Settings(BaseSettings):
    """Everything partner-share reads from its environment."""

    # validate_by_name: Settings(api_token=...) must not be dropped as an unknown extra.
    model_config = SettingsConfigDict(
        env_prefix="PARTNER_SHARE_", extra="ignore", validate_by_name=True
    )

    service_name: str = "partner-share"
    environment: str = environment_field("PARTNER_SHARE_")
    database_url: str = Field(
        default="sqlite:///var/partner-share.db",
        validation_alias=AliasChoices("PARTNER_SHARE_DATABASE_URL", "DATABASE_URL"),
    )
    api_token: str = Field(
        default=DEVELOPMENT_TOKEN,
        validation_alias=AliasChoices("PARTNER_SHARE_API_TOKEN", "RAPPORT_API_TOKEN"),
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        validation_alias=AliasChoices("PARTNER_SHARE_MAX_BODY_BYTES", "RAPPORT_MAX_BODY_BYTES"),
        description="Largest request body accepted; a larger one gets 413",
    )
    # Key of the disclosure ledger's subject pseudonyms (HMAC-SHA256 of the customer id):
    # with it and an id a privacy officer finds a person's entries after their erasure.
    # Changing it leaves earlier entries findable only under the old key.
    ledger_key: str = Field(
        default=DEVELOPMENT_LEDGER_KEY,
        validation_alias=AliasChoices("PARTNER_SHARE_LEDGER_KEY", "ledger_key"),
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # False makes an API-only replica: it publishes (outbox) but does not join the
    # consumer group. At least one replica must consume, or consents never arrive.
    consume_events: bool = True

    profile_url: str = Field(
        default="http://127.0.0.1:8001",
        validation_alias=AliasChoices("PARTNER_SHARE_PROFILE_URL", "PROFILE_URL"),
    )
    # Bearer token for profile; the service's own token when unset (one token in development).
    profile_api_token: str | None = None
    profile_timeout_s: float = 5.0

    rate_limit_per_second: float = Field(default=20.0, gt=0)
    rate_limit_burst: int = Field(default=40, ge=1)
    k_anonymity_threshold: int = Field(default=10, ge=2)

    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_backoff_s: float = Field(default=1.0, gt=0)
    webhook_max_backoff_s: float = Field(default=600.0, gt=0)
    worker_poll_interval_s: float = Field(default=0.2, gt=0)

    @property
    def profile_token(self) -> str:
        return self.profile_api_token or self.api_token

    @model_validator(mode="after")
    def _strong_secrets_outside_development(self) -> Self:
        enforce_secrets(
            self.environment,
            {
                "PARTNER_SHARE_API_TOKEN (or RAPPORT_API_TOKEN)": self.api_token,
                "PARTNER_SHARE_PROFILE_API_TOKEN": self.profile_api_token,
                "PARTNER_SHARE_LEDGER_KEY": self.ledger_key,
                **self.kafka.secrets(),
            },
        )
        return self


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
