"""Campaign settings, from the environment (prefix CAMPAIGN_)."""

from typing import Literal

from pydantic import AliasChoices, Field

from rapport_events.environment import (
    DEVELOPMENT_SIGNING_SECRET,
    DEVELOPMENT_TOKEN,
)
from rapport_events.service_settings import ServiceSettings, service_config

__all__ = ["DEVELOPMENT_TOKEN", "Settings", "get_settings"]


class Settings(ServiceSettings):
    """Everything campaign reads from its environment."""

    model_config = service_config("CAMPAIGN_")

    service_name: str = "campaign"

    # Links in messages (click, open pixel, unsubscribe) point here.
    public_url: str = "http://127.0.0.1:8002"
    # Signs click, open and unsubscribe tokens.
    signing_secret: str = DEVELOPMENT_SIGNING_SECRET
    # A link older than this answers 410: a leaked token does not work for ever, and a
    # customer's old mail keeps working for a season.
    link_token_max_age_days: float = Field(default=90.0, gt=0)

    # Profile owns consents: an unsubscribe is sent there as a revocation.
    profile_url: str = "http://127.0.0.1:8001"
    profile_token: str = Field(
        default=DEVELOPMENT_TOKEN,
        validation_alias=AliasChoices("CAMPAIGN_PROFILE_TOKEN", "RAPPORT_API_TOKEN"),
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout_s: float = 15.0
    mail_from: str = "Rapport <news@rapport.example>"

    sms_webhook_url: str | None = None
    push_webhook_url: str | None = None
    social_webhook_url: str | None = None
    webhook_secret: str = DEVELOPMENT_SIGNING_SECRET
    webhook_timeout_s: float = 10.0

    send_batch_size: int = 200
    send_concurrency: int = 8
    send_max_attempts: int = 5
    send_retry_base_s: float = 2.0
    # A claimed message not finished in this time is claimed again (the sender died).
    send_lease_s: float = 120.0
    worker_interval_s: float = 1.0

    frequency_cap_messages: int = 3
    frequency_cap_hours: float = 24.0
    attribution_model: Literal["last_touch", "first_touch"] = "last_touch"
    attribution_window_hours: float = 168.0
    # Segments whose rule reads the clock ("in the last 30 days") are recomputed this often.
    segment_refresh_interval_s: float = 300.0

    def own_secrets(self) -> dict[str, str | None]:
        """Campaign's own secrets, by the variable that sets them."""
        return {
            "CAMPAIGN_SIGNING_SECRET": self.signing_secret,
            "CAMPAIGN_WEBHOOK_SECRET": self.webhook_secret,
            "CAMPAIGN_PROFILE_TOKEN (or RAPPORT_API_TOKEN)": self.profile_token,
        }

    def webhook_url(self, channel: str) -> str | None:
        """Where messages of a non-e-mail channel are posted."""
        return {
            "sms": self.sms_webhook_url,
            "push": self.push_webhook_url,
            "social": self.social_webhook_url,
        }.get(channel)


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
