"""Support settings, from the environment (prefix SUPPORT_)."""

from typing import Self

from pydantic import BaseModel, Field, HttpUrl, SecretStr, model_validator

from rapport_events.environment import DEVELOPMENT_TOKEN
from rapport_events.service_settings import ServiceSettings, service_config
from rapport_events.types import Priority

__all__ = ["DEVELOPMENT_TOKEN", "Settings", "SocialWebhook", "get_settings"]

DEFAULT_FIRST_RESPONSE_MINUTES: dict[Priority, int] = {
    "urgent": 15,
    "high": 60,
    "normal": 240,
    "low": 480,
}
DEFAULT_RESOLUTION_MINUTES: dict[Priority, int] = {
    "urgent": 240,
    "high": 1_440,
    "normal": 4_320,
    "low": 10_080,
}


class SocialWebhook(BaseModel):
    """Where replies to one platform's mentions go, and the secret that signs them."""

    url: HttpUrl
    secret: SecretStr = Field(min_length=16)


class Settings(ServiceSettings):
    """Everything support reads from its environment."""

    model_config = service_config("SUPPORT_")

    service_name: str = "support"

    # Warranty of a product: by model, else by category, else the default.
    warranty_months: int = Field(default=24, ge=0, le=600)
    warranty_months_by_category: dict[str, int] = Field(default_factory=dict)
    warranty_months_by_model: dict[str, int] = Field(default_factory=dict)

    # SLA targets per priority until an agent sets a policy with PUT /sla-policies/{priority}.
    sla_first_response_minutes: dict[Priority, int] = Field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE_MINUTES)
    )
    sla_resolution_minutes: dict[Priority, int] = Field(
        default_factory=lambda: dict(DEFAULT_RESOLUTION_MINUTES)
    )
    sla_check_interval_s: float = Field(default=30.0, gt=0)

    # Replies to social mentions: one signed webhook per platform.
    social_webhooks: dict[str, SocialWebhook] = Field(default_factory=dict)
    # Where replies to a platform without a webhook of its own go (`make run`: its sink).
    social_webhook_default: SocialWebhook | None = None
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    webhook_backoff_s: float = Field(default=2.0, gt=0)
    webhook_max_backoff_s: float = Field(default=600.0, gt=0)
    reply_poll_interval_s: float = Field(default=1.0, gt=0)

    # Similar tickets are searched among this many of the newest tickets.
    similarity_corpus_limit: int = Field(default=5_000, ge=10)
    similarity_min_score: float = Field(default=0.1, ge=0, le=1)

    def own_secrets(self) -> dict[str, str | None]:
        """The secrets that sign replies to each platform, by the variable that sets them."""
        webhooks: dict[str, str | None] = {
            f"SUPPORT_SOCIAL_WEBHOOKS[{name}].secret": hook.secret.get_secret_value()
            for name, hook in self.social_webhooks.items()
        }
        if self.social_webhook_default is not None:
            secret = self.social_webhook_default.secret.get_secret_value()
            webhooks["SUPPORT_SOCIAL_WEBHOOK_DEFAULT.secret"] = secret
        return webhooks

    @model_validator(mode="after")
    def _platforms_in_lower_case(self) -> Self:
        self.social_webhooks = {name.lower(): hook for name, hook in self.social_webhooks.items()}
        return self

    def webhook_for(self, platform: str) -> SocialWebhook | None:
        """Where replies on `platform` go: its own webhook, else the default one, else none."""
        return self.social_webhooks.get(platform, self.social_webhook_default)

    def warranty_months_for(self, product_model: str | None, category: str | None) -> int:
        """Months of warranty of a product: its model's, else its category's, else the default."""
        by_model = {key.lower(): months for key, months in self.warranty_months_by_model.items()}
        by_category = {
            key.lower(): months for key, months in self.warranty_months_by_category.items()
        }
        if product_model and product_model.lower() in by_model:
            return by_model[product_model.lower()]
        if category and category.lower() in by_category:
            return by_category[category.lower()]
        return self.warranty_months


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
