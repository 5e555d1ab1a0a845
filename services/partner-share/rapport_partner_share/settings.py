"""Partner-share settings, from the environment (prefix PARTNER_SHARE_)."""

from pydantic import AliasChoices, Field

from rapport_events.environment import (
    DEVELOPMENT_LEDGER_KEY,
    DEVELOPMENT_TOKEN,
)
from rapport_events.service_settings import ServiceSettings, service_config

__all__ = ["DEVELOPMENT_TOKEN", "Settings", "get_settings"]


class Settings(ServiceSettings):
    """Everything partner-share reads from its environment."""

    model_config = service_config("PARTNER_SHARE_")

    service_name: str = "partner-share"
    # Key of the disclosure ledger's subject pseudonyms (HMAC-SHA256 of the customer id):
    # with it and an id a privacy officer finds a person's entries after their erasure.
    # Changing it leaves earlier entries findable only under the old key.
    ledger_key: str = Field(
        default=DEVELOPMENT_LEDGER_KEY,
        validation_alias=AliasChoices("PARTNER_SHARE_LEDGER_KEY", "ledger_key"),
    )

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

    def own_secrets(self) -> dict[str, str | None]:
        """Partner-share's own secrets, by the variable that sets them."""
        return {
            "PARTNER_SHARE_PROFILE_API_TOKEN": self.profile_api_token,
            "PARTNER_SHARE_LEDGER_KEY": self.ledger_key,
        }


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
