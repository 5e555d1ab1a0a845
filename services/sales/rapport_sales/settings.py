"""Sales settings, from the environment (prefix SALES_)."""

from typing import Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rapport_events.environment import DEVELOPMENT_TOKEN, enforce_secrets, environment_field
from rapport_events.limits import DEFAULT_MAX_BODY_BYTES
from rapport_events.settings import KafkaSettings

__all__ = ["DEVELOPMENT_TOKEN", "Settings", "get_settings"]


class Settings(BaseSettings):
    """Everything sales reads from its environment."""

    # validate_by_name: Settings(api_token=...) must not be dropped as an unknown extra.
    model_config = SettingsConfigDict(env_prefix="SALES_", extra="ignore", validate_by_name=True)

    service_name: str = "sales"
    environment: str = environment_field("SALES_")
    database_url: str = Field(
        default="sqlite:///var/sales.db",
        validation_alias=AliasChoices("SALES_DATABASE_URL", "DATABASE_URL"),
    )
    api_token: str = Field(
        default=DEVELOPMENT_TOKEN,
        validation_alias=AliasChoices("SALES_API_TOKEN", "RAPPORT_API_TOKEN"),
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        validation_alias=AliasChoices("SALES_MAX_BODY_BYTES", "RAPPORT_MAX_BODY_BYTES"),
        description="Largest request body accepted; a larger one gets 413",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # False makes an API-only replica: it publishes (outbox) but does not join the
    # consumer group. At least one replica must consume, or contacts never arrive.
    consume_events: bool = True
    profile_url: str = Field(
        default="http://127.0.0.1:8001",
        validation_alias=AliasChoices("SALES_PROFILE_URL", "PROFILE_URL"),
        description="Profile, for contacts' timelines and the historical revenue forecast",
    )
    # Bearer token for profile; the service's own token when unset (one token in development).
    profile_api_token: str | None = None
    profile_timeout_s: float = Field(default=3.0, gt=0)
    default_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    # Largest raw e-mail accepted by POST /emails (RFC 5322 source, attachments included).
    max_email_bytes: int = Field(default=256 * 1024, ge=1024)
    # Attached documents: where their bytes live, how large and of which types they may be.
    documents_dir: str = "var/sales-documents"
    max_document_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    document_types: list[str] = Field(
        default=[
            "application/pdf",
            "image/png",
            "image/jpeg",
            "text/plain",
            "text/csv",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ],
        description="Content types POST /documents accepts; anything else is a 415",
    )

    @model_validator(mode="after")
    def _strong_secrets_outside_development(self) -> Self:
        enforce_secrets(
            self.environment,
            {"SALES_API_TOKEN (or RAPPORT_API_TOKEN)": self.api_token, **self.kafka.secrets()},
        )
        return self

    @property
    def profile_token(self) -> str:
        return self.profile_api_token or self.api_token


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
