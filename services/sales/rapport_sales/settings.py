"""Sales settings, from the environment (prefix SALES_)."""

from pydantic import AliasChoices, Field

from rapport_events.environment import DEVELOPMENT_TOKEN
from rapport_events.service_settings import ServiceSettings, service_config

__all__ = ["DEVELOPMENT_TOKEN", "Settings", "get_settings"]


class Settings(ServiceSettings):
    """Everything sales reads from its environment."""

    model_config = service_config("SALES_")

    service_name: str = "sales"
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

    @property
    def profile_token(self) -> str:
        return self.profile_api_token or self.api_token


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
