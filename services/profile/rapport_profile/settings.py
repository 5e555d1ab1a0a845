"""Profile settings, from the environment (prefix PROFILE_)."""

from pydantic import AliasChoices, Field

from rapport_events.environment import (
    DEVELOPMENT_TOKEN,
    DEVELOPMENT_WRITE_KEY,
)
from rapport_events.service_settings import ServiceSettings, service_config
from rapport_profile.consents import privacy_signals

__all__ = ["DEVELOPMENT_TOKEN", "DEVELOPMENT_WRITE_KEY", "Settings", "get_settings"]


class Settings(ServiceSettings):
    """Everything profile reads from its environment."""

    model_config = service_config("PROFILE_")

    service_name: str = "profile"
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

    def own_secrets(self) -> dict[str, str | None]:
        """Profile's own secrets, by the variable that sets them."""
        return {
            "PROFILE_SERVICES_TOKEN": self.services_token,
            **{f"PROFILE_WRITE_KEYS[{i}]": key for i, key in enumerate(self.write_keys)},
        }


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
