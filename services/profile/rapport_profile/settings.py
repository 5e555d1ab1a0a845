"""Profile settings, from the environment (prefix PROFILE_)."""

from typing import Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rapport_events.environment import (
    DEVELOPMENT_TOKEN,
    DEVELOPMENT_WRITE_KEY,
    enforce_secrets,
    environment_field,
)
from rapport_events.limits import DEFAULT_MAX_BODY_BYTES
from rapport_events.settings import KafkaSettings
from rapport_profile.consents import privacy_signals

__all__ = ["DEVELOPMENT_TOKEN", "DEVELOPMENT_WRITE_KEY", "Settings", "get_settings"]


class Settings(BaseSettings):
    """Everything profile reads from its environment."""

    # validate_by_name: Settings(api_token=...) must not be dropped as an unknown extra.
    model_config = SettingsConfigDict(env_prefix="PROFILE_", extra="ignore", validate_by_name=True)

    service_name: str = "profile"
    environment: str = environment_field("PROFILE_")
    database_url: str = Field(
        default="sqlite:///var/profile.db",
        validation_alias=AliasChoices("PROFILE_DATABASE_URL", "DATABASE_URL"),
    )
    api_token: str = Field(
        default=DEVELOPMENT_TOKEN,
        validation_alias=AliasChoices("PROFILE_API_TOKEN", "RAPPORT_API_TOKEN"),
    )
    write_keys: list[str] = Field(
        default=[DEVELOPMENT_WRITE_KEY],
        description="Write keys the tracking API accepts (HTTP Basic user, or `writeKey`)",
    )
    tracking_cors_origins: list[str] = Field(
        default=["*"],
        description="Origins whose browsers may call /v1/* (CORS); `*` any, empty none",
    )
    campaign_url: str = Field(
        default="http://127.0.0.1:8002",
        validation_alias=AliasChoices("PROFILE_CAMPAIGN_URL", "CAMPAIGN_URL"),
    )
    support_url: str = Field(
        default="http://127.0.0.1:8003",
        validation_alias=AliasChoices("PROFILE_SUPPORT_URL", "SUPPORT_URL"),
    )
    partner_share_url: str = Field(
        default="http://127.0.0.1:8004",
        validation_alias=AliasChoices("PROFILE_PARTNER_SHARE_URL", "PARTNER_SHARE_URL"),
    )
    sales_url: str = Field(
        default="http://127.0.0.1:8005",
        validation_alias=AliasChoices("PROFILE_SALES_URL", "SALES_URL"),
    )
    services_token: str | None = Field(
        default=None, description="Bearer token for the other services; the api_token if unset"
    )
    peer_timeout_s: float = 2.0
    erasure_wait_s: float = 5.0
    forecast_refresh_s: float = Field(
        default=600.0, ge=1.0, description="how often the forecast models are fitted again"
    )
    default_currency: str = Field(
        default="EUR",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of orders and carts tracked without a currency",
    )
    sharing_consent_categories: list[str] = Field(
        default=list(privacy_signals.DEFAULT_SHARING_CATEGORIES),
        max_length=32,
        description="Consent categories (ids in Segment's context.consent.categoryPreferences)"
        " whose refusal refuses sale and sharing with partners",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        validation_alias=AliasChoices("PROFILE_MAX_BODY_BYTES", "RAPPORT_MAX_BODY_BYTES"),
        description="Largest request body accepted; a larger one gets 413",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    @property
    def peers(self) -> dict[str, str]:
        """The other services whose export and erasure profile gathers; empty URL = none."""
        urls = {
            "campaign": self.campaign_url,
            "support": self.support_url,
            "partner-share": self.partner_share_url,
            "sales": self.sales_url,
        }
        return {name: url.rstrip("/") for name, url in urls.items() if url}

    @model_validator(mode="after")
    def _strong_secrets_outside_development(self) -> Self:
        enforce_secrets(
            self.environment,
            {
                "PROFILE_API_TOKEN (or RAPPORT_API_TOKEN)": self.api_token,
                "PROFILE_SERVICES_TOKEN": self.services_token,
                **{f"PROFILE_WRITE_KEYS[{i}]": key for i, key in enumerate(self.write_keys)},
                **self.kafka.secrets(),
            },
        )
        return self


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
